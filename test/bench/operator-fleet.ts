/**
 * `npm run bench -- operator`: the operator and the sidecars on a real local control
 * plane (etcd, kube-apiserver, kube-controller-manager), with the emulator as referee.
 * Printed, never asserted: API writes per second for 50 pods, steady and under churn,
 * by who writes; the time from a demand shift to the new grant in force; and the share
 * of the limit in use under skewed demand, Demand strategy next to Equal. The sidecars
 * run in this process (see in-process-pods.ts), the operator as a process of its own.
 */
import { loadavg } from 'node:os';
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { leaseName, type StreamLease, streamLeaseResource } from '../../crds/api/index.js';
import { ControlPlane } from '../cluster/control-plane.js';
import { crdManifests } from '../cluster/crds.js';
import { LocalFleet, type RunningOperator } from '../fleet/local-fleet.js';
import { waitFor } from '../support/wait.js';
import { type InProcessPod, InProcessPods } from './in-process-pods.js';
import { growth, samplesOf, sumBy } from './metrics-text.js';
import { cpuSeconds } from './proc.js';
import { percentile } from './stats.js';

/** Short lease and election timings, so that the whole run takes minutes. */
function operatorEnv(namespace: string): Record<string, string> {
  return {
    SLUICE_WATCH_NAMESPACE: namespace,
    SLUICE_LEADER_ELECTION_LEASE_SECONDS: '3',
    SLUICE_LEADER_ELECTION_RENEW_DEADLINE_SECONDS: '2',
    SLUICE_LEADER_ELECTION_RETRY_PERIOD_SECONDS: '0.5',
    SLUICE_DEMAND_HALF_LIFE_SECONDS: '2',
    SLUICE_STALE_GONE_HOLD_SECONDS: '5',
  };
}

const leaseDurationSeconds = 3;

function fixed(value: number, digits = 1): string {
  return Number.isFinite(value) ? value.toFixed(digits) : '—';
}

async function namespaceFleet(admin: KubeConfig, namespace: string, limit: number): Promise<LocalFleet> {
  await admin.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: namespace } } });
  return LocalFleet.create({ admin, namespace, limit, leaseDurationSeconds, queueTimeoutMs: 0 });
}

/** Waits until every pod's lease carries an acknowledged grant above 0. */
async function allAcknowledged(fleet: LocalFleet, pods: number, timeoutMs = 120_000): Promise<StreamLease[]> {
  return waitFor(
    `${pods} acknowledged grants`,
    async () => {
      const leases = (await fleet.leases()).filter((l) => !l.metadata.deletionTimestamp);
      const ready = leases.filter((l) => l.status?.observedEpoch === l.spec.epoch && l.spec.grant.concurrency > 0);
      return ready.length >= pods ? leases : undefined;
    },
    { timeoutMs, intervalMs: 500 },
  );
}

// ---------------------------------------------------------------------------------------
// 1. API writes per second.

interface Reading {
  at: number;
  /** apiserver_request_total by "verb resource subresource". */
  requests: Map<string, number>;
  /** The same, for answers 4xx and 5xx, by "verb resource subresource code". */
  failures: Map<string, number>;
  /** apiserver_watch_events_total: events sent to watchers, by resource. */
  watchEvents: Map<string, number>;
  operator: Map<string, number>;
  sidecar: Map<string, number>;
  sidecarLog: Map<string, number>;
  /** The operator's warnings and errors by message and code. */
  operatorLog: Map<string, number>;
  /** CPU seconds by process. */
  cpu: Map<string, number>;
  /** Connections the sidecars' API calls opened so far. */
  connections: number;
  /** This process's event-loop delay since the previous reading, ms. */
  loopDelay: { p99: number; max: number };
  /** The machine's 1-minute load average: other work on the machine slows everything here. */
  load: number;
}

interface Probes {
  plane: ControlPlane;
  operator: RunningOperator;
  pods: InProcessPods;
  loop: IntervalHistogram;
}

function operatorLog(output: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of output.split('\n')) {
    if (!/"level":(40|50|60)/.test(line)) continue;
    const { msg, code } = JSON.parse(line) as { msg?: string; code?: unknown };
    const key = `${msg}${code === undefined ? '' : ` (code ${code})`}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

async function read(probes: Probes): Promise<Reading> {
  const { plane, operator, pods } = probes;
  const at = performance.now();
  const [etcd, apiServer] = plane.pids;
  const cpu = new Map([
    ['bench process (50 sidecars, emulator, clients)', cpuSeconds(process.pid)],
    ['operator', cpuSeconds(operator.script.child.pid as number)],
    ['kube-apiserver', cpuSeconds(apiServer as number)],
    ['etcd', cpuSeconds(etcd as number)],
  ]);
  const loopDelay = { p99: probes.loop.percentile(99) / 1e6, max: probes.loop.max / 1e6 };
  probes.loop.reset();
  const connections = pods.apiConnections;
  const [api, operatorText, sidecar] = await Promise.all([
    plane.kubectl(['get', '--raw', '/metrics']),
    fetch(`${operator.admin}/metrics`).then((r) => r.text()),
    pods.sidecarCounter('leaseWrites', 'result'),
  ]);
  if (api.code !== 0) throw new Error(`Reading kube-apiserver's metrics failed: ${api.stderr}`);
  const samples = samplesOf(api.stdout, 'apiserver_request_total');
  return {
    at,
    requests: sumBy(samples, ['verb', 'resource', 'subresource']),
    failures: sumBy(
      samples.filter((s) => /^[45]/.test(s.labels.code ?? '')),
      ['verb', 'resource', 'subresource', 'code'],
    ),
    watchEvents: sumBy(samplesOf(api.stdout, 'apiserver_watch_events_total'), ['resource', 'kind']),
    operator: sumBy(samplesOf(operatorText, 'sluice_operator_api_writes_total'), ['kind', 'result']),
    sidecar,
    sidecarLog: pods.log.snapshot(),
    operatorLog: operatorLog(operator.script.output()),
    cpu,
    connections,
    loopDelay,
    load: loadavg()[0] as number,
  };
}

/** What happened between two readings: the same figures, as growth over the window. */
interface Window extends Omit<Reading, 'at'> {
  name: string;
  from: number;
  to: number;
  seconds: number;
}

function windowBetween(name: string, a: Reading, b: Reading): Window {
  return {
    name,
    from: a.at,
    to: b.at,
    seconds: (b.at - a.at) / 1000,
    requests: growth(a.requests, b.requests),
    failures: growth(a.failures, b.failures),
    watchEvents: growth(a.watchEvents, b.watchEvents),
    operator: growth(a.operator, b.operator),
    sidecar: growth(a.sidecar, b.sidecar),
    sidecarLog: growth(a.sidecarLog, b.sidecarLog),
    operatorLog: growth(a.operatorLog, b.operatorLog),
    cpu: growth(a.cpu, b.cpu),
    connections: b.connections - a.connections,
    loopDelay: b.loopDelay,
    load: b.load,
  };
}

const writeVerbs = new Set(['POST', 'PUT', 'PATCH', 'DELETE', 'DELETECOLLECTION', 'APPLY']);

/** Who sends each kind of write, as far as the resource tells. */
const writers: Record<string, string> = {
  'PATCH streamleases status': 'sidecars: acknowledgements and heartbeats',
  'PATCH streamleases ': 'operator: grants (JSON patch) and finalizer removal',
  'POST streamleases ': 'operator: lease creation',
  'DELETE streamleases ': 'operator release; garbage collector (pod gone)',
  'PATCH streambudgets status': 'operator: budget status',
  'PATCH streambudgets ': 'operator: budget finalizer',
  'PUT leases ': 'operator: leader election renewals',
  'POST events ': 'operator: events',
  'POST pods ': 'the bench: pods created',
  'DELETE pods ': 'the bench: pods deleted',
  'POST serviceaccounts token': 'the bench: sidecar tokens',
};

/** A row: a label, then one figure per window. */
function row(label: string, windows: readonly Window[], figure: (w: Window) => string, note = ''): string {
  return `   ${label.padEnd(44)}${windows.map((w) => figure(w).padStart(12)).join('')}${note ? `  ${note}` : ''}`;
}

function printApiWrites(pods: number, windows: Window[], touched: ReadonlySet<string>, pods0: InProcessPods): void {
  type Counts = 'requests' | 'operator' | 'sidecar' | 'failures' | 'watchEvents';
  const perSecond = (w: Window, map: Counts, key: string) => fixed((w[map].get(key) ?? 0) / w.seconds, 2);
  const keysOf = (map: Counts) => [...new Set(windows.flatMap((w) => [...w[map].keys()]))].sort();
  const total = (w: Window, verbs: (verb: string) => boolean) =>
    [...w.requests].filter(([k]) => verbs(k.split(' ')[0] as string)).reduce((sum, [, v]) => sum + v, 0) / w.seconds;

  console.log(
    `\n1. API requests for ${pods} pods, one budget (limit 100, lease ${leaseDurationSeconds} s), from kube-apiserver's apiserver_request_total`,
  );
  console.log('   held: every pod holds 1 stream, nothing changes');
  console.log(
    '   turnover: every pod keeps 1 stream, each lasting 5–15 s and replaced at once (steady load, calls ending)',
  );
  console.log(
    '   churn: turnover, plus demand moving (5 pods want 4) every 2 s, a pod replaced every 3 s, a sidecar restarted every 5 s',
  );
  console.log(row('writes per second', windows, (w) => `${w.name}/s`, 'who'));
  const writeKeys = keysOf('requests').filter((k) => writeVerbs.has(k.split(' ')[0] as string));
  for (const key of writeKeys) {
    const [verb, resource, subresource] = key.split(' ') as [string, string, string];
    const name = `${verb} ${subresource ? `${resource}/${subresource}` : resource}`;
    console.log(row(name, windows, (w) => perSecond(w, 'requests', key), writers[key] ?? '?'));
  }
  console.log(
    row('all writes', windows, (w) =>
      fixed(
        total(w, (v) => writeVerbs.has(v)),
        2,
      ),
    ),
  );
  console.log(
    row('reads (GET + LIST)', windows, (w) =>
      fixed(
        total(w, (v) => v === 'GET' || v === 'LIST'),
        2,
      ),
    ),
  );
  for (const key of keysOf('failures')) {
    const parts = key.split(' ').filter(Boolean);
    const code = parts.pop();
    console.log(row(`answered ${code}: ${parts.join(' ')} (count)`, windows, (w) => String(w.failures.get(key) ?? 0)));
  }

  // The busy ones only: the control plane's own objects tick over slowly.
  const busy = (key: string) => windows.some((w) => (w.watchEvents.get(key) ?? 0) / w.seconds >= 1);
  for (const key of keysOf('watchEvents').filter(busy)) {
    console.log(
      row(`watch events sent: ${key.trim()}/s`, windows, (w) => perSecond(w, 'watchEvents', key), 'events × watchers'),
    );
  }

  console.log('\n   By writer, from their own counters');
  for (const key of keysOf('operator')) {
    const [kind, result] = key.split(' ');
    console.log(row(`operator ${kind} (${result})/s`, windows, (w) => perSecond(w, 'operator', key)));
  }
  for (const key of keysOf('sidecar')) {
    console.log(row(`sidecars lease status writes (${key})/s`, windows, (w) => perSecond(w, 'sidecar', key)));
  }
  console.log(
    row(
      'connections the sidecars opened for API calls/s',
      windows,
      (w) => fixed(w.connections / w.seconds, 2),
      'each a TCP connection and a TLS handshake',
    ),
  );
  const perPod = (w: Window) => [...w.sidecar.values()].reduce((a, b) => a + b, 0) / w.seconds / pods;
  console.log(
    row(
      'sidecar status writes per pod/s',
      windows,
      (w) => fixed(perPod(w), 2),
      `a plain heartbeat every ${fixed(leaseDurationSeconds / 3)} s is ${fixed(3 / leaseDurationSeconds, 2)}/s; a change at most every ${fixed(Math.min(1, leaseDurationSeconds / 6), 1)} s`,
    ),
  );

  console.log('\n   Cost');
  const cpuKeys = [...(windows[0]?.cpu.keys() ?? [])];
  for (const key of cpuKeys) {
    console.log(row(`CPU ${key}, cores`, windows, (w) => fixed((w.cpu.get(key) ?? 0) / w.seconds, 2)));
  }
  console.log(
    row(
      'bench event-loop delay p99 / max, ms',
      windows,
      (w) => `${fixed(w.loopDelay.p99, 0)}/${fixed(w.loopDelay.max, 0)}`,
    ),
  );

  console.log(
    row(
      'machine load average (1 min, 2 cores) at the end',
      windows,
      (w) => fixed(w.load, 1),
      'other work shares the machine',
    ),
  );
  for (const w of windows) {
    const sidecarWarnings = [...w.sidecarLog].map(([msg, n]) => `${n}× "${msg}"`).join(', ');
    const operatorWarnings = [...w.operatorLog].map(([msg, n]) => `${n}× "${msg}"`).join(', ');
    console.log(
      `   ${w.name}: sidecars logged ${sidecarWarnings || 'no warnings'}; the operator ${operatorWarnings || 'none'}`,
    );
    const fenced = new Set(
      pods0.log.entries.filter((e) => e.at >= w.from && e.at < w.to && e.msg.startsWith('Fenced')).map((e) => e.pod),
    );
    if (fenced.size > 0) {
      const restarted = w.name === 'churn' ? [...fenced].filter((p) => touched.has(p)).length : 0;
      console.log(
        `     fenced pods: ${fenced.size}${w.name === 'churn' ? ` (${restarted} of them restarted, new or deleted in the churn)` : ''}: ${[...fenced].slice(0, 12).join(', ')}`,
      );
    }
  }
}

async function apiWrites(plane: ControlPlane, admin: KubeConfig): Promise<void> {
  const podCount = 50;
  const fleet = await namespaceFleet(admin, 'bench-writes', 100);
  const pods = new InProcessPods(fleet);
  const loop = monitorEventLoopDelay({ resolution: 10 });
  try {
    const names = Array.from({ length: podCount }, (_, i) => `pod-${i}`);
    for (let i = 0; i < names.length; i += 10) {
      await Promise.all(names.slice(i, i + 10).map((name) => pods.addPod(name, { retryMs: 500 })));
    }
    const operator = await fleet.startOperator(operatorEnv(fleet.namespace));
    await allAcknowledged(fleet, podCount);
    for (const pod of pods.pods.values()) pod.driver.want(1);
    await waitFor('every pod to hold its stream', () => [...pods.pods.values()].every((p) => p.driver.open === 1), {
      timeoutMs: 60_000,
      intervalMs: 250,
    });
    // The sidecars' demand windows (10 s) forget the refusals of the start.
    await sleep(12_000);
    loop.enable();
    const probes: Probes = { plane, operator, pods, loop };

    const start = await read(probes);
    await sleep(30_000);
    const held = await read(probes);

    for (const pod of pods.pods.values()) {
      pod.driver.options.lifetimeMs = [5000, 15_000];
      pod.driver.replaceAll();
    }
    await sleep(12_000);
    const turnoverStart = await read(probes);
    await sleep(30_000);
    const turnover = await read(probes);

    let next = podCount;
    let hot: InProcessPod[] = [];
    const touched = new Set<string>();
    const pending: Promise<unknown>[] = [];
    const churnStart = performance.now();
    for (let second = 0; second < 30; second++) {
      const live = [...pods.pods.values()];
      if (second % 2 === 0) {
        for (const pod of hot) pod.driver.want(1);
        hot = live.sort(() => Math.random() - 0.5).slice(0, 5);
        for (const pod of hot) pod.driver.want(4);
      }
      if (second % 3 === 0) {
        const oldest = [...pods.pods.keys()][0] as string;
        const name = `pod-${next++}`;
        touched.add(oldest).add(name);
        pending.push(
          pods.deletePod(oldest),
          pods.addPod(name, { retryMs: 500, lifetimeMs: [5000, 15_000] }).then((pod) => pod.driver.want(1)),
        );
      }
      if (second % 5 === 2) {
        const pod = live[Math.floor(Math.random() * live.length)] as InProcessPod;
        if (pod.sidecar) {
          touched.add(pod.name);
          pending.push(
            pods.stopSidecar(pod).then(async () => {
              if (pods.pods.has(pod.name)) await pods.startSidecar(pod);
            }),
          );
        }
      }
      await sleep(Math.max(0, churnStart + (second + 1) * 1000 - performance.now()));
    }
    await Promise.all(pending);
    const churn = await read(probes);
    printApiWrites(
      podCount,
      [
        windowBetween('held', start, held),
        windowBetween('turnover', turnoverStart, turnover),
        windowBetween('churn', turnover, churn),
      ],
      touched,
      pods,
    );
  } finally {
    loop.disable();
    await pods.stop();
    await fleet.stop();
  }
}

// ---------------------------------------------------------------------------------------
// 2. From a demand shift to the new grant in force.

interface ShiftTimes {
  firstRaise: number;
  half: number;
  full: number;
  held: number;
}

async function acknowledgedGrant(fleet: LocalFleet, pod: InProcessPod): Promise<number | undefined> {
  const lease = (await fleet.custom
    .getNamespacedCustomObject({
      ...streamLeaseResource,
      namespace: fleet.namespace,
      name: leaseName(fleet.options.budgetName, pod.name, pod.uid),
    })
    .catch(() => undefined)) as StreamLease | undefined;
  return lease?.status?.observedEpoch === lease?.spec.epoch ? lease?.status?.grant?.concurrency : undefined;
}

async function demandShifts(fleet: LocalFleet, pods: InProcessPod[], shifts: number, want: number) {
  const times: ShiftTimes[] = [];
  let timeouts = 0;
  const first = pods[0] as InProcessPod;
  first.driver.want(want);
  await waitFor(`${first.name} to hold ${want} streams`, () => first.driver.open >= want, {
    timeoutMs: 60_000,
    intervalMs: 100,
  });
  for (let i = 0; i < shifts; i++) {
    const from = pods[i % pods.length] as InProcessPod;
    const to = pods[(i + 1) % pods.length] as InProcessPod;
    const before = (await acknowledgedGrant(fleet, to)) ?? 0;
    const t0 = performance.now();
    void from.driver.closeAll();
    to.driver.want(want);
    const seen: Partial<ShiftTimes> = {};
    while (seen.full === undefined || seen.held === undefined) {
      const elapsed = performance.now() - t0;
      if (elapsed > 60_000) {
        timeouts += 1;
        break;
      }
      const grant = await acknowledgedGrant(fleet, to);
      const now = performance.now() - t0;
      if (grant !== undefined) {
        if (grant > before) seen.firstRaise ??= now;
        if (grant >= want / 2) seen.half ??= now;
        if (grant >= want) seen.full ??= now;
      }
      if (to.driver.open >= want) seen.held ??= now;
      await sleep(50);
    }
    if (seen.full !== undefined && seen.held !== undefined) {
      times.push({
        firstRaise: seen.firstRaise ?? seen.full,
        half: seen.half ?? seen.full,
        full: seen.full,
        held: seen.held,
      });
    }
  }
  await Promise.all(pods.map((p) => p.driver.closeAll()));
  return { times, timeouts };
}

function printShifts(result: { times: ShiftTimes[]; timeouts: number }, pods: number, limit: number, want: number) {
  console.log(
    `\n2. Demand shift to the new grant in force: ${pods} pods, limit ${limit}; one pod holds ${want} streams, then closes them while the next asks for ${want} (refused attempts retried every 100 ms); ${result.times.length} shifts${result.timeouts ? `, ${result.timeouts} not complete within 60 s` : ''}`,
  );
  console.log(
    `   ${'from the shift until'.padEnd(58)}${'p50 s'.padStart(8)}${'p95 s'.padStart(8)}${'max s'.padStart(8)}`,
  );
  const rows: [string, keyof ShiftTimes][] = [
    ["the new pod's lease shows a higher acknowledged grant", 'firstRaise'],
    [`... an acknowledged grant of at least ${want / 2}`, 'half'],
    [`... an acknowledged grant of at least ${want}`, 'full'],
    [`the new pod holds ${want} streams`, 'held'],
  ];
  for (const [label, key] of rows) {
    const sorted = result.times.map((t) => t[key] / 1000).sort((a, b) => a - b);
    console.log(
      `   ${label.padEnd(58)}${fixed(percentile(sorted, 50), 2).padStart(8)}${fixed(percentile(sorted, 95), 2).padStart(8)}${fixed(sorted.at(-1) ?? Number.NaN, 2).padStart(8)}`,
    );
  }
  console.log(
    '   (the old pod reports its demand as the peak of the last 10 s, and the operator lets it fall with a 2 s half-life: until then the two pods split the limit)',
  );
}

// ---------------------------------------------------------------------------------------
// 3. Utilization under skewed demand: Demand next to Equal.

interface Utilization {
  strategy: string;
  meanInUse: number;
  peak: number;
  overLimitMoments: number;
  rejectedPerSecond: Map<string, number>;
  admittedPerSecond: number;
  heldByPod: number[];
  grants: number[];
}

async function utilization(
  fleet: LocalFleet,
  pods: InProcessPods,
  ordered: InProcessPod[],
  strategy: 'Demand' | 'Equal',
  settleMs: number,
  windowMs: number,
): Promise<Utilization> {
  await fleet.patchBudgetSpec({ allocation: { strategy } });
  await sleep(settleMs);
  fleet.emulator.reset();
  const rejectedBefore = await pods.sidecarCounter('rejected', 'reason');
  const admittedBefore = await pods.sidecarCounter('admitted');
  const inUse: number[] = [];
  const held: number[][] = [];
  const start = performance.now();
  while (performance.now() - start < windowMs) {
    inUse.push(fleet.referee().inUse);
    held.push(ordered.map((p) => p.driver.open));
    await sleep(200);
  }
  const seconds = (performance.now() - start) / 1000;
  const referee = fleet.referee();
  const rejected = growth(rejectedBefore, await pods.sidecarCounter('rejected', 'reason'));
  const admitted = growth(admittedBefore, await pods.sidecarCounter('admitted'));
  const leases = await fleet.leases();
  return {
    strategy,
    meanInUse: inUse.reduce((a, b) => a + b, 0) / inUse.length,
    peak: referee.peak,
    overLimitMoments: referee.overLimitMoments,
    rejectedPerSecond: new Map([...rejected].map(([k, v]) => [k, v / seconds])),
    admittedPerSecond: (admitted.get('all') ?? 0) / seconds,
    heldByPod: ordered.map((_, i) => held.reduce((sum, h) => sum + (h[i] ?? 0), 0) / held.length),
    grants: ordered.map((p) => leases.find((l) => l.spec.podUID === p.uid)?.status?.grant?.concurrency ?? 0),
  };
}

function printUtilization(results: Utilization[], limit: number, wants: number[], windowSeconds: number): void {
  const wanted = wants.reduce((a, b) => a + b, 0);
  console.log(
    `\n3. Utilization under skewed demand: limit ${limit}, ${wants.length} pods wanting ${wants.join(' / ')} streams (${wanted} in all), streams lasting 2–6 s and replaced at once, refusals retried every 200 ms; ${windowSeconds} s windows after settling`,
  );
  console.log(
    `   ${'strategy'.padEnd(10)}${'in use (referee)'.padStart(18)}${'of limit'.padStart(10)}${'peak'.padStart(6)}${'over'.padStart(6)}${'admitted/s'.padStart(12)}${'refused/s'.padStart(11)}  held by pod (mean)              acknowledged grants`,
  );
  for (const r of results) {
    const refused = [...r.rejectedPerSecond.values()].reduce((a, b) => a + b, 0);
    const reasons = [...r.rejectedPerSecond].map(([k, v]) => `${k} ${fixed(v)}`).join(', ');
    console.log(
      `   ${r.strategy.padEnd(10)}${fixed(r.meanInUse).padStart(18)}${`${fixed((100 * r.meanInUse) / limit)} %`.padStart(10)}${String(r.peak).padStart(6)}${String(r.overLimitMoments).padStart(6)}${fixed(r.admittedPerSecond).padStart(12)}${fixed(refused).padStart(11)}  ${r.heldByPod
        .map((h) => fixed(h))
        .join(' / ')
        .padEnd(32)}${r.grants.join(' / ')}${reasons ? `   (refused: ${reasons})` : ''}`,
    );
  }
}

// ---------------------------------------------------------------------------------------

async function shiftsAndUtilization(admin: KubeConfig): Promise<void> {
  const limit = 50;
  const fleet = await namespaceFleet(admin, 'bench-shifts', limit);
  const pods = new InProcessPods(fleet);
  try {
    const ordered: InProcessPod[] = [];
    for (let i = 0; i < 5; i++) ordered.push(await pods.addPod(`pod-${i}`, { retryMs: 100 }));
    await fleet.startOperator(operatorEnv(fleet.namespace));
    await allAcknowledged(fleet, ordered.length);

    const want = 40;
    printShifts(await demandShifts(fleet, ordered, 20, want), ordered.length, limit, want);

    // 60 % of the limit (and a little more) on one pod, 10 % on each of the others.
    const wants = [32, 5, 5, 5, 5];
    for (const [i, pod] of ordered.entries()) {
      pod.driver.options.lifetimeMs = [2000, 6000];
      pod.driver.options.retryMs = 200;
      pod.driver.want(wants[i] as number);
    }
    const windowMs = 20_000;
    const results = [
      await utilization(fleet, pods, ordered, 'Demand', 15_000, windowMs),
      await utilization(fleet, pods, ordered, 'Equal', 15_000, windowMs),
    ];
    printUtilization(results, limit, wants, windowMs / 1000);
  } finally {
    await pods.stop();
    await fleet.stop();
  }
}

export async function operatorFleet(): Promise<void> {
  console.log('\nOperator on a local control plane (in-process sidecars, operator process, emulator referee)');
  const plane = await ControlPlane.start({ crds: crdManifests });
  try {
    const admin = plane.kubeConfig();
    await apiWrites(plane, admin);
    await shiftsAndUtilization(admin);
  } finally {
    await plane.stop();
  }
}
