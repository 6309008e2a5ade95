/**
 * What the sidecar adds to each audio frame's round trip, next to nginx (a WebSocket
 * reverse proxy, the reference), a bare Node TCP pipe (the floor of any Node relay) and
 * no relay at all. Flux-like streams send an 80 ms
 * frame of 2,560 bytes every 80 ms; the emulator answers every frame. The emulator and
 * the load run on core 0, the relay alone on core 1. Printed: added latency p50/p99, the
 * relay's CPU time per 1,000 frames and its resident memory per open stream.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePorts } from '../cluster/control-plane.js';
import { ManagedProcess, repoRoot } from '../cluster/process.js';
import { waitFor } from '../support/wait.js';
import { startBenchEmulator } from './bench-emulator.js';
import { cpuSeconds, rssBytes } from './proc.js';

const run = promisify(execFile);
const flux = '/v2/listen?model=flux-general-en&encoding=linear16&sample_rate=16000';

interface Load {
  streams: number;
  open: number;
  failed: number;
  lagP50Ms: number;
  lagP99Ms: number;
  framesSent: number;
}

function nginxBinary(): string | undefined {
  return ['/usr/sbin/nginx', '/usr/bin/nginx'].find((path) => existsSync(path));
}

async function load(url: string, streams: number, seconds: number): Promise<Load> {
  const { stdout } = await run(
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
    { cwd: repoRoot, maxBuffer: 1024 * 1024 },
  );
  return JSON.parse(stdout.trim().split('\n').at(-1) as string) as Load;
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
  const built = join(repoRoot, 'dist', 'sidecar', 'main.js');
  const entry = existsSync(built) ? [built] : ['--import', 'tsx', 'sidecar/main.ts'];
  const sidecar = new ManagedProcess({
    name: 'sidecar',
    command: 'taskset',
    args: ['-c', '1', process.execPath, ...entry],
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
    name: 'sluice sidecar',
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
    name: 'nginx (reference)',
    url: `ws://127.0.0.1:${port}${flux}`,
    pids: () => [master.pid as number, ...workerPids],
    stop: () => master.stop(),
  };
}

function row(cells: (string | number)[]): string {
  return cells.map((c, i) => String(c).padStart(i === 0 ? 20 : 13)).join(' ');
}

async function measure(relay: Relay | undefined, url: string, streams: number, seconds: number) {
  const pids = relay?.pids() ?? [];
  const cpuBefore = pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  const rssBefore = pids.reduce((sum, pid) => sum + rssBytes(pid), 0);
  // Sample memory while every stream is open: after the ramp, during the measurement.
  let rssOpen = 0;
  const sampler = setTimeout(
    () => {
      rssOpen = pids.reduce((sum, pid) => sum + rssBytes(pid), 0);
    },
    3000 + 2000 + (seconds * 1000) / 2,
  );
  const result = await load(url, streams, seconds);
  clearTimeout(sampler);
  const cpu = pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0) - cpuBefore;
  return {
    result,
    cpuMsPer1000Frames: relay ? (cpu * 1000) / (result.framesSent / 1000) : 0,
    kibPerStream: relay ? (rssOpen - rssBefore) / streams / 1024 : 0,
    cpuSeconds: cpu,
  };
}

export async function relayLatency(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-relay-'));
  const { port: emulatorPort, process: emulator } = await startBenchEmulator(dir, {
    core: 0,
    flux: { idleTimeoutSeconds: 600, updateIntervalSeconds: 0.08 },
  });
  const relays: Relay[] = [];
  // Each relay starts afresh for each stream count, so that memory per stream is not blurred by an earlier run's garbage.
  const startRelays = async () => {
    relays.push(await startSidecar(dir, emulatorPort));
    relays.push(await startNodePipe(dir, emulatorPort));
    const nginx = await startNginx(dir, emulatorPort);
    if (nginx) relays.push(nginx);
    else console.log('nginx is not installed (npm run setup installs it): the reference column is missing.');
  };
  const stopRelays = async () => {
    for (const relay of relays.splice(0)) await relay.stop();
  };
  try {
    for (const streams of [150, 1000]) {
      await stopRelays();
      await startRelays();
      console.log(
        `\nRelay round trip: ${streams} Flux-like streams, 80 ms frames of 2,560 bytes, an answer to every frame; emulator and load on core 0, relay on core 1`,
      );
      console.log(
        row(['relay', 'p50 ms', 'p99 ms', 'added p50', 'added p99', 'CPU/1k frames', 'KiB/stream', 'relay CPU %']),
      );
      const seconds = 8;
      const direct = await measure(undefined, `ws://127.0.0.1:${emulatorPort}${flux}`, streams, seconds);
      console.log(
        row([
          'none (direct)',
          direct.result.lagP50Ms.toFixed(2),
          direct.result.lagP99Ms.toFixed(2),
          '-',
          '-',
          '-',
          '-',
          '-',
        ]),
      );
      for (const relay of relays) {
        const measured = await measure(relay, relay.url, streams, seconds);
        const r = measured.result;
        const wall = 3 + 2 + seconds;
        console.log(
          row([
            relay.name,
            r.lagP50Ms.toFixed(2),
            r.lagP99Ms.toFixed(2),
            `+${(r.lagP50Ms - direct.result.lagP50Ms).toFixed(2)}`,
            `+${(r.lagP99Ms - direct.result.lagP99Ms).toFixed(2)}`,
            `${measured.cpuMsPer1000Frames.toFixed(1)} ms`,
            measured.kibPerStream.toFixed(1),
            `${((measured.cpuSeconds / wall) * 100).toFixed(0)} %`,
          ]) + (r.open === streams && r.failed === 0 ? '' : `  (${r.open} of ${streams} open, ${r.failed} failed)`),
        );
      }
    }
  } finally {
    await stopRelays();
    await emulator.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
