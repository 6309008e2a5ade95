/**
 * What the sidecar adds to each audio frame's round trip, next to nginx (a WebSocket
 * reverse proxy, the reference), a bare Node TCP pipe (the floor of any Node relay) and
 * no relay at all. Flux-like streams send an 80 ms frame of 2,560 bytes every 80 ms; the
 * emulator answers every frame. The emulator and the load run on core 0, the relay alone
 * on core 1. Printed, as medians of interleaved rounds: added latency p50/p99, the
 * relay's CPU time per 1,000 frames while every stream is open (and what opening and
 * closing a stream costs, apart), and its resident memory per open stream.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { freePorts } from '../cluster/control-plane.js';
import { ManagedProcess, repoRoot } from '../cluster/process.js';
import { waitFor } from '../support/wait.js';
import { startBenchEmulator } from './bench-emulator.js';
import { cpuTimes, rssBytes } from './proc.js';
import { median } from './stats.js';

const run = promisify(execFile);
const flux = '/v2/listen?model=flux-general-en&encoding=linear16&sample_rate=16000';
const sidecarName = 'sluice sidecar';

interface Load {
  streams: number;
  open: number;
  failed: number;
  lagP50Ms: number;
  lagP99Ms: number;
  framesSent: number;
  framesInWindow: number;
}

function nginxBinary(): string | undefined {
  return ['/usr/sbin/nginx', '/usr/bin/nginx'].find((path) => existsSync(path));
}

/** What a relay's processes have used so far: CPU in user space and in the kernel, and resident memory. */
function usage(pids: number[]) {
  let user = 0;
  let system = 0;
  let rss = 0;
  for (const pid of pids) {
    const times = cpuTimes(pid);
    user += times.user;
    system += times.system;
    rss += rssBytes(pid);
  }
  return { user, system, cpu: user + system, rss };
}

/** One measured run of the load through a relay (or none). */
interface Run {
  load: Load;
  /** CPU seconds over the measurement window (every stream open, frames flowing), and its user-space part. */
  windowCpu: number;
  windowUser: number;
  /** How busy the relay's core was during the window, and core 0 (the emulator and the load generator). */
  relayCorePercent: number;
  core0Percent: number;
  /** CPU milliseconds per stream for everything outside the window's frames: handshakes, ramp, teardown. */
  setupMsPerStream: number;
  kibPerStream: number;
}

/**
 * Runs the load generator through `url` and measures the relay's processes over the
 * generator's measurement window only; what opening and closing the streams costs is
 * reported apart, per stream, so that it is not charged to the frames.
 */
async function measure(
  pids: number[],
  url: string,
  streams: number,
  seconds: number,
  emulatorPid: number,
): Promise<Run> {
  const before = usage(pids);
  let atWindow = before;
  let atWindowEnd = before;
  let core0AtWindow = 0;
  let windowStartedAt = 0;
  let windowSeconds = 0;
  let core0Seconds = 0;
  let rssOpen = 0;
  let sampler: NodeJS.Timeout | undefined;
  const generator = spawn(
    'taskset',
    [
      '-c',
      '0',
      process.execPath,
      '--import',
      'tsx',
      'test/bench/flux-load.ts',
      '--url',
      url,
      '--key',
      'bench-key',
      '--streams',
      String(streams),
      '--update-seconds',
      '0.08',
      '--seconds',
      String(seconds),
    ],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let load: Load | undefined;
  for await (const line of createInterface({ input: generator.stdout })) {
    const message = JSON.parse(line) as { event?: string } & Load;
    if (message.event === 'measuring') {
      atWindow = usage(pids);
      core0AtWindow = usage([emulatorPid, generator.pid as number]).cpu;
      windowStartedAt = performance.now();
      // Memory is sampled halfway through the window, with every stream open.
      sampler = setTimeout(
        () => {
          rssOpen = usage(pids).rss;
        },
        (seconds * 1000) / 2,
      );
    } else {
      atWindowEnd = usage(pids);
      core0Seconds = usage([emulatorPid, generator.pid as number]).cpu - core0AtWindow;
      windowSeconds = (performance.now() - windowStartedAt) / 1000;
      load = message;
    }
  }
  clearTimeout(sampler);
  if (!load) throw new Error('the load generator printed no figures');
  // The relay has closed every stream once its CPU time stops moving.
  let settled = usage(pids);
  for (let i = 0; i < 50; i++) {
    await new Promise((resolve) => setTimeout(resolve, 300));
    const now = usage(pids);
    if (pids.length === 0 || now.cpu - settled.cpu < 0.005) break;
    settled = now;
  }
  const windowCpu = atWindowEnd.cpu - atWindow.cpu;
  const perFrame = load.framesInWindow > 0 ? windowCpu / load.framesInWindow : 0;
  const outside = settled.cpu - before.cpu - windowCpu - perFrame * (load.framesSent - load.framesInWindow);
  return {
    load,
    windowCpu,
    windowUser: atWindowEnd.user - atWindow.user,
    relayCorePercent: (windowCpu / windowSeconds) * 100,
    core0Percent: (core0Seconds / windowSeconds) * 100,
    setupMsPerStream: (Math.max(0, outside) * 1000) / streams,
    kibPerStream: (rssOpen - before.rss) / streams / 1024,
  };
}

interface Relay {
  name: string;
  url: string;
  /** Processes whose CPU and memory are the relay's. */
  pids: () => number[];
  stop: () => Promise<void>;
}

async function startSidecar(dir: string, emulatorPort: number): Promise<Relay> {
  const [proxyPort, adminPort] = (await freePorts(2)) as [number, number];
  const budgets = join(dir, 'budgets.yaml');
  writeFileSync(
    budgets,
    `apiVersion: sluice.dev/v1alpha1
kind: StreamBudget
metadata: {name: bench}
spec:
  projectId: bench
  upstream: ws://127.0.0.1:${emulatorPort}
  podSelector: {matchLabels: {app: bench}}
  maxConcurrentStreams: 100000
  reaping: {idleTimeoutSeconds: 600, pingIntervalSeconds: 60}
`,
  );
  // The bin as it ships (`npm run bench` builds it first), with the runtime flags of its first line.
  const sidecar = new ManagedProcess({
    name: 'sidecar',
    command: 'taskset',
    args: ['-c', '1', join(repoRoot, 'dist', 'sidecar', 'main.js')],
    logFile: join(dir, 'sidecar.log'),
    env: {
      ...process.env,
      SLUICE_BUDGET_FILE: budgets,
      SLUICE_LISTEN: `127.0.0.1:${proxyPort}`,
      SLUICE_ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
      SLUICE_LOG_LEVEL: 'warn',
      SLUICE_SHUTDOWN_GRACE_SECONDS: '0',
    },
  });
  await waitFor('the sidecar to listen', () => fetch(`http://127.0.0.1:${adminPort}/readyz`).then((r) => r.ok), {
    timeoutMs: 20_000,
  });
  return {
    name: sidecarName,
    url: `ws://127.0.0.1:${proxyPort}${flux}`,
    pids: () => [sidecar.pid as number],
    stop: () => sidecar.stop(),
  };
}

/**
 * The least any Node relay can cost: a TCP pipe that neither parses nor checks anything.
 * The gap between it and nginx is Node's own I/O; the gap between it and the sidecar, ours.
 */
async function startNodePipe(dir: string, emulatorPort: number): Promise<Relay> {
  const [port] = (await freePorts(1)) as [number];
  const script = join(dir, 'pipe.mjs');
  writeFileSync(
    script,
    `import net from 'node:net';
net.createServer({ noDelay: true }, (client) => {
  const upstream = net.connect({ port: ${emulatorPort}, host: '127.0.0.1', noDelay: true });
  client.pipe(upstream).on('error', () => client.destroy());
  upstream.pipe(client).on('error', () => upstream.destroy());
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
}).listen(${port}, '127.0.0.1', () => console.log('listening'));
`,
  );
  const pipe = new ManagedProcess({
    name: 'node pipe',
    command: 'taskset',
    args: ['-c', '1', process.execPath, script],
    logFile: join(dir, `pipe-${port}.log`),
  });
  await waitFor('the pipe to listen', () => readFileSync(join(dir, `pipe-${port}.log`), 'utf8').includes('listening'), {
    timeoutMs: 10_000,
  });
  return {
    name: 'node TCP pipe (floor)',
    url: `ws://127.0.0.1:${port}${flux}`,
    pids: () => [pipe.pid as number],
    stop: () => pipe.stop(),
  };
}

async function startNginx(dir: string, emulatorPort: number): Promise<Relay | undefined> {
  const nginx = nginxBinary();
  if (!nginx) return undefined;
  const [port] = (await freePorts(1)) as [number];
  const root = join(dir, 'nginx');
  mkdirSync(root, { recursive: true });
  const conf = join(root, 'nginx.conf');
  writeFileSync(
    conf,
    `${process.getuid?.() === 0 ? 'user root;' : ''}
worker_processes 1;
daemon off;
pid ${root}/nginx.pid;
error_log ${root}/error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path ${root}/body;
  proxy_temp_path ${root}/proxy;
  fastcgi_temp_path ${root}/fastcgi;
  uwsgi_temp_path ${root}/uwsgi;
  scgi_temp_path ${root}/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://127.0.0.1:${emulatorPort};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 3600s;
      proxy_buffering off;
    }
  }
}
`,
  );
  const master = new ManagedProcess({
    name: 'nginx',
    command: 'taskset',
    args: ['-c', '1', nginx, '-c', conf, '-p', root],
    logFile: join(root, 'stdout.log'),
  });
  const workers = async () =>
    (await run('pgrep', ['-P', String(master.pid)]).catch(() => ({ stdout: '' }))).stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map(Number);
  await waitFor('nginx to start its worker', async () => (await workers()).length > 0, { timeoutMs: 10_000 });
  const workerPids = await workers();
  return {
    name: nginxName,
    url: `ws://127.0.0.1:${port}${flux}`,
    pids: () => [master.pid as number, ...workerPids],
    stop: () => master.stop(),
  };
}

function row(cells: (string | number)[]): string {
  return cells.map((c, i) => String(c).padStart(i === 0 ? 22 : 11)).join(' ');
}

const cpuPer1000 = (run: Run) => (run.windowCpu * 1000) / (run.load.framesInWindow / 1000);

/**
 * Runs every relay `rounds` times, each round with every relay started afresh (so that
 * memory per stream is not blurred by an earlier run's garbage) and measured in a rotated
 * order, next to the load without a relay. Prints each figure's median over the rounds,
 * with added latency and CPU relative to nginx taken within each round, so that a machine
 * whose speed drifts between rounds does not tilt the comparison.
 */
async function compare(
  startRelays: () => Promise<Relay[]>,
  emulatorPort: number,
  streams: number,
  rounds: number,
  seconds: number,
  emulatorPid: number,
) {
  const runs = new Map<string, Run[]>();
  const direct: Run[] = [];
  const names: string[] = [];
  for (let round = 0; round < rounds; round++) {
    direct.push(await measure([], `ws://127.0.0.1:${emulatorPort}${flux}`, streams, seconds, emulatorPid));
    const relays = await startRelays();
    try {
      for (let i = 0; i < relays.length; i++) {
        const relay = relays[(i + round) % relays.length] as Relay;
        if (!runs.has(relay.name)) runs.set(relay.name, []);
        runs.get(relay.name)?.push(await measure(relay.pids(), relay.url, streams, seconds, emulatorPid));
      }
      if (round === 0) names.push(...relays.map((relay) => relay.name));
    } finally {
      for (const relay of relays) await relay.stop();
    }
  }
  const nginx = runs.get(nginxName);
  console.log(
    row([
      'relay',
      'added p50',
      'added p99',
      'CPU/1k frames',
      'CPU range',
      'vs nginx',
      'user part',
      'open+close',
      'KiB/stream',
      'relay core',
      'core 0',
    ]),
  );
  console.log(
    row([
      'none (direct)',
      `${median(direct.map((r) => r.load.lagP50Ms)).toFixed(2)} ms`,
      `${median(direct.map((r) => r.load.lagP99Ms)).toFixed(2)} ms`,
      '-',
      '-',
      '-',
      '-',
      '-',
      '-',
      '-',
      `${median(direct.map((r) => r.core0Percent)).toFixed(0)} %`,
    ]),
  );
  const figures = new Map<string, { addedP99: number; cpuVsNginx: number; kibPerStream: number }>();
  for (const name of names) {
    const own = runs.get(name) as Run[];
    const cpu = own.map(cpuPer1000);
    const addedP50 = median(own.map((r, i) => r.load.lagP50Ms - (direct[i] as Run).load.lagP50Ms));
    const addedP99 = median(own.map((r, i) => r.load.lagP99Ms - (direct[i] as Run).load.lagP99Ms));
    const vsNginx = nginx ? median(own.map((r, i) => cpuPer1000(r) / cpuPer1000(nginx[i] as Run))) : Number.NaN;
    const kibPerStream = median(own.map((r) => r.kibPerStream));
    figures.set(name, { addedP99, cpuVsNginx: vsNginx, kibPerStream });
    const incomplete = own.filter((r) => r.load.open !== streams || r.load.failed > 0).length;
    console.log(
      row([
        name,
        `${addedP50 >= 0 ? '+' : ''}${addedP50.toFixed(2)} ms`,
        `${addedP99 >= 0 ? '+' : ''}${addedP99.toFixed(2)} ms`,
        `${median(cpu).toFixed(1)} ms`,
        `${Math.min(...cpu).toFixed(0)}-${Math.max(...cpu).toFixed(0)}`,
        Number.isNaN(vsNginx) ? '-' : `${vsNginx.toFixed(2)}x`,
        `${((median(own.map((r) => r.windowUser / r.windowCpu)) || 0) * 100).toFixed(0)} %`,
        `${median(own.map((r) => r.setupMsPerStream)).toFixed(2)} ms`,
        kibPerStream.toFixed(1),
        `${median(own.map((r) => r.relayCorePercent)).toFixed(0)} %`,
        `${median(own.map((r) => r.core0Percent)).toFixed(0)} %`,
      ]) + (incomplete > 0 ? `  (${incomplete} of ${rounds} runs lost streams)` : ''),
    );
  }
  return figures;
}

const nginxName = 'nginx (reference)';

export async function relayLatency(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-relay-'));
  const { port: emulatorPort, process: emulator } = await startBenchEmulator(dir, {
    core: 0,
    flux: { idleTimeoutSeconds: 600, updateIntervalSeconds: 0.08 },
  });
  const startRelays = async () => {
    const relays = [await startSidecar(dir, emulatorPort), await startNodePipe(dir, emulatorPort)];
    const nginx = await startNginx(dir, emulatorPort);
    if (nginx) relays.push(nginx);
    return relays;
  };
  if (!nginxBinary()) console.log('nginx is not installed (npm run setup installs it): the reference row is missing.');
  try {
    for (const { streams, rounds } of [
      { streams: 150, rounds: 3 },
      { streams: 1000, rounds: 1 },
    ]) {
      console.log(
        `\nRelay round trip: ${streams} Flux-like streams, 80 ms frames of 2,560 bytes, an answer to every frame; emulator and load on core 0, relay on core 1; median of ${rounds} round${rounds > 1 ? 's' : ''}, CPU over 8 s with every stream open`,
      );
      const figures = await compare(startRelays, emulatorPort, streams, rounds, 8, emulator.pid as number);
      const sidecar = figures.get(sidecarName);
      const nginx = figures.get(nginxName);
      if (streams === 150 && sidecar && nginx) {
        const latencyGoal = Math.max(1, 2 * nginx.addedP99);
        const verdict = (met: boolean) => (met ? 'met' : 'NOT met');
        console.log(
          `Goals at 150 streams: added p99 ${sidecar.addedP99.toFixed(2)} ms <= ${latencyGoal.toFixed(2)} ms ${verdict(sidecar.addedP99 <= latencyGoal)}; ` +
            `CPU ${sidecar.cpuVsNginx.toFixed(2)}x nginx <= 1.5x ${verdict(sidecar.cpuVsNginx <= 1.5)}; ` +
            `${sidecar.kibPerStream.toFixed(1)} KiB per stream <= 64 ${verdict(sidecar.kibPerStream <= 64)}`,
        );
      }
    }
  } finally {
    await emulator.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
