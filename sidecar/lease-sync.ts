/**
 * Lease sync: the sidecar's side of the lease protocol in Kubernetes mode. It watches
 * the namespace's StreamBudgets, its own Pod (for its labels) and its own StreamLeases,
 * enforces each budget that selects the pod at its lease's grant (0 without a lease, 0
 * while fenced), acknowledges each new grant in one status write and heartbeats its
 * usage. The rules (demand window, write schedule, fence) are pure and take the time;
 * the watches and the writes are the thin edge around them. Selectors and the protocol's
 * shared rules come from crds/api, as the operator reads them.
 */
import { CustomObjectsApi, type KubeConfig, PatchStrategy, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { type Clock, systemClock } from '../crds/api/clock.js';
import {
  type LeaseTimings,
  leaseTimings,
  podUidLabel,
  releaseMarginMs,
  type StreamBudget,
  type StreamLease,
  type StreamLeaseSpecGrant,
  type StreamLeaseStatus,
  sameGrant,
  selects,
  sidecarManager,
  slotHoldMs,
  streamBudgetResource,
  streamLeaseResource,
} from '../crds/api/index.js';
import { Informer, podsResource } from '../crds/kube/informer.js';
import { PooledKubeConfig } from '../crds/kube/pooled-kube-config.js';
import { describeFailure } from '../crds/kube/request-failure.js';
import { requestOptions } from '../crds/kube/request-options.js';
import { type Admission, BudgetGate, type BudgetSettings, type Grant } from './admission.js';
import type { EnforcedBudget } from './budgets.js';
import type { PodIdentity } from './config.js';
import { RouteMatcher } from './match.js';
import type { SidecarMetrics } from './metrics.js';

// ---------------------------------------------------------------------------------------
// The pure rules.

/** How much a growing total rose within a sliding window, e.g. streams started in the last 60 s. */
export class RecentCount {
  readonly windowMs: number;
  /** Totals as they changed; the first is the total at (or before) the window's start. */
  #samples: { at: number; total: number }[] = [];

  constructor(windowMs: number) {
    this.windowMs = windowMs;
  }

  record(now: number, total: number): void {
    if (this.#samples.at(-1)?.total !== total) this.#samples.push({ at: now, total });
    this.#prune(now);
  }

  count(now: number): number {
    this.#prune(now);
    const first = this.#samples[0];
    const last = this.#samples.at(-1);
    return first && last ? last.total - first.total : 0;
  }

  #prune(now: number): void {
    const start = now - this.windowMs;
    while (this.#samples.length > 1 && (this.#samples[1] as { at: number }).at <= start) this.#samples.shift();
  }
}

/**
 * A pod's demand: the peak, over the last `windowMs`, of what it held and wanted
 * (inUse + queued), plus the streams it rejected in that window. It rises the moment
 * a sample is higher and falls only once the higher samples have left the window.
 */
export class DemandWindow {
  readonly windowMs: number;
  /** Levels as they changed; the first is the level in force at (or before) the window's start. */
  #levels: { at: number; level: number }[] = [];
  readonly #rejections: RecentCount;

  constructor(windowMs = 10_000) {
    this.windowMs = windowMs;
    this.#rejections = new RecentCount(windowMs);
  }

  /** Records the level (inUse + queued) and the total of rejections so far, at `now`. */
  record(now: number, level: number, rejectedTotal: number): void {
    if (this.#levels.at(-1)?.level !== level) this.#levels.push({ at: now, level });
    this.#rejections.record(now, rejectedTotal);
    this.#prune(now);
  }

  demand(now: number): number {
    this.#prune(now);
    const peak = this.#levels.reduce((max, sample) => Math.max(max, sample.level), 0);
    return peak + this.#rejections.count(now);
  }

  #prune(now: number): void {
    const start = now - this.windowMs;
    while (this.#levels.length > 1 && (this.#levels[1] as { at: number }).at <= start) this.#levels.shift();
  }
}

/**
 * The sidecar's fence: up while the last successful status write was *sent* less than
 * `fenceAfterMs` ago (on the monotonic clock). Since the operator can only observe a
 * write after it was sent, a sidecar that cannot write fences before the operator calls
 * its lease stale. A sidecar that never wrote successfully is fenced.
 */
export class Fence {
  fenceAfterMs: number;
  #lastSentAt: number | undefined;

  constructor(fenceAfterMs: number) {
    this.fenceAfterMs = fenceAfterMs;
  }

  /** A write sent at `sentAt` succeeded (writes may complete out of order: the latest send counts). */
  succeeded(sentAt: number): void {
    this.#lastSentAt = this.#lastSentAt === undefined ? sentAt : Math.max(this.#lastSentAt, sentAt);
  }

  fenced(now: number): boolean {
    return this.#lastSentAt === undefined || now - this.#lastSentAt >= this.fenceAfterMs;
  }

  /** When the fence falls unless another write succeeds first; undefined before the first success. */
  fallsAt(): number | undefined {
    return this.#lastSentAt === undefined ? undefined : this.#lastSentAt + this.fenceAfterMs;
  }
}

/** What is waiting to be written: an acknowledgement, a change of usage, or nothing (a plain heartbeat). */
export type PendingWrite = 'ack' | 'change' | 'none';

/**
 * When the next status write goes out. A new acknowledgement goes at once, always; a
 * change of usage at most once per `minHeartbeatGapMs`; with nothing new, a heartbeat
 * every `heartbeatMs`. After a failed write, anything but a new acknowledgement (a
 * failed one included) is retried after a backoff that doubles from `retryMs` up to the
 * heartbeat interval: the API is not hammered, and is tried often enough to lift the
 * fence soon after it returns.
 */
export class WriteSchedule {
  timings: Pick<LeaseTimings, 'heartbeatMs' | 'minHeartbeatGapMs' | 'writeTimeoutMs'>;
  readonly retryMs: number;
  #lastSentAt: number | undefined;
  #failedAt: number | undefined;
  #failures = 0;

  constructor(timings: Pick<LeaseTimings, 'heartbeatMs' | 'minHeartbeatGapMs' | 'writeTimeoutMs'>, retryMs = 100) {
    this.timings = timings;
    this.retryMs = retryMs;
  }

  get failures(): number {
    return this.#failures;
  }

  /** The time the next write is due at (at or before now: at once). */
  dueAt(pending: PendingWrite): number {
    if (this.#lastSentAt === undefined || pending === 'ack') return Number.NEGATIVE_INFINITY;
    if (this.#failures > 0 && this.#failedAt !== undefined) {
      const backoff = Math.min(this.timings.heartbeatMs, this.retryMs * 2 ** (this.#failures - 1));
      return this.#failedAt + backoff;
    }
    if (pending === 'change') return this.#lastSentAt + this.timings.minHeartbeatGapMs;
    return this.#lastSentAt + this.timings.heartbeatMs;
  }

  sent(now: number): void {
    this.#lastSentAt = now;
  }

  succeeded(): void {
    this.#failures = 0;
    this.#failedAt = undefined;
  }

  failed(now: number): void {
    this.#failures += 1;
    this.#failedAt = now;
  }
}

/**
 * The counters a lease reports: streams admitted, rejected locally, ended by the sidecar
 * on its own (idle, a missed pong, too long) and refused by the upstream at the handshake
 * (any HTTP status, a timeout, unreachable). They only grow, across restarts of the sidecar.
 */
const totalKeys = ['admittedTotal', 'rejectedTotal', 'reapedTotal', 'upstreamRejectedTotal'] as const;
export type LeaseTotals = Record<(typeof totalKeys)[number], number>;

function totalsOf(value: (key: keyof LeaseTotals) => number): LeaseTotals {
  return Object.fromEntries(totalKeys.map((key) => [key, value(key)])) as LeaseTotals;
}

/** A gate's own counters, since it was created. */
export function gateTotals(gate: BudgetGate): LeaseTotals {
  return {
    admittedTotal: gate.admitted,
    rejectedTotal: gate.rejected.concurrency + gate.rejected['session-rate'] + gate.rejected['no-grant'],
    reapedTotal: gate.reaped,
    upstreamRejectedTotal: gate.upstreamRejected,
  };
}

/** The counters a lease's status carries; one it does not carry (an older sidecar wrote it) counts from 0. */
export function reportedTotals(status: StreamLeaseStatus | undefined): LeaseTotals {
  return totalsOf((key) => status?.[key] ?? 0);
}

/**
 * The counters to report: what the lease carried when this run took it up, plus what the
 * gate counted since. The gate may be older than the lease: a lease recreated under the
 * same name continues from its own status, not from the gate's.
 */
export function continuedTotals(base: { reported: LeaseTotals; gate: LeaseTotals }, gateNow: LeaseTotals): LeaseTotals {
  return totalsOf((key) => base.reported[key] + gateNow[key] - base.gate[key]);
}

/** What a status write reports, less its time. */
export interface LeaseReport extends LeaseTotals {
  observedEpoch: number;
  grant: Grant;
  inUse: number;
  staleSlots: number;
  queued: number;
  demand: number;
  sessionsLastMinute: number;
  /** New streams wanted per minute: starts and refusals for the session rate at the rate of the last 10 s, plus streams waiting. */
  sessionDemand: number;
  /** The pod's new-session window by the second in which its starts leave it (not compared: it moves with time). */
  sessionWindow: number[];
  /** The part of it held for an earlier run of the sidecar: starts not known to have been made. */
  sessionWindowInherited: number[];
}

/**
 * Whether a report is new to the operator: an acknowledgement, another usage, or the same
 * as before. Any counter that moved is a change, so that the operator sees, say, an
 * upstream refusal within the minimum heartbeat gap rather than at the next plain heartbeat.
 */
export function pendingWrite(written: LeaseReport | undefined, report: LeaseReport): PendingWrite {
  if (!written || written.observedEpoch !== report.observedEpoch || !sameGrant(written.grant, report.grant)) {
    return 'ack';
  }
  const keys = [
    'inUse',
    'staleSlots',
    'queued',
    'demand',
    'sessionsLastMinute',
    'sessionDemand',
    ...totalKeys,
  ] as const;
  return keys.some((k) => written[k] !== report[k]) ? 'change' : 'none';
}

/**
 * The merge patch of the status subresource for a report. A grant without a
 * new-session rate sends nulls, so that merging removes a rate written before.
 */
export function statusPatch(report: LeaseReport, heartbeatTime: Date): { status: Record<string, unknown> } {
  const status: Omit<StreamLeaseStatus, 'grant'> & { grant: Record<string, number | null> } = {
    observedEpoch: report.observedEpoch,
    grant: {
      concurrency: report.grant.concurrency,
      newSessionsPerMinute: report.grant.newSessionsPerMinute ?? null,
    },
    inUse: report.inUse,
    staleSlots: report.staleSlots,
    queued: report.queued,
    demand: report.demand,
    sessionsLastMinute: report.sessionsLastMinute,
    sessionDemand: report.sessionDemand,
    sessionWindow: report.sessionWindow,
    sessionWindowInherited: report.sessionWindowInherited,
    admittedTotal: report.admittedTotal,
    rejectedTotal: report.rejectedTotal,
    reapedTotal: report.reapedTotal,
    upstreamRejectedTotal: report.upstreamRejectedTotal,
    // RFC 3339 with milliseconds: the operator tells heartbeats apart within a second.
    heartbeatTime: heartbeatTime.toISOString(),
  };
  return { status };
}

/**
 * What a sidecar starting up holds for a lease it finds, before it admits anything: the
 * previous run could have had open as many streams as it last reported, or as many as any
 * grant it may have put in force allowed (it may have died between putting a grant in
 * force and acknowledging it): those slots are held for the release delay. Its starts
 * still inside the new-session window are held too: those it last reported, and as many
 * more as its quota allowed since, for a whole window (`BudgetGate.holdSessions`). A lease with no
 * status never had a run that admitted: a sidecar admits nothing before its first
 * successful write. Returns the slots held.
 */
export function holdInherited(gate: BudgetGate, lease: Pick<StreamLease, 'spec' | 'status'>, now: number): number {
  const status = lease.status;
  if (!status) return 0;
  const held = Math.max(status.inUse ?? 0, status.grant?.concurrency ?? 0, lease.spec.grant.concurrency);
  const quota = Math.max(status.grant?.newSessionsPerMinute ?? 0, lease.spec.grant.newSessionsPerMinute ?? 0);
  gate.holdSessions(status.sessionWindow, quota, now);
  gate.holdStale(held, now);
  return held;
}

function grantOf(grant: StreamLeaseSpecGrant): Grant {
  const out: Grant = { concurrency: grant.concurrency };
  if (grant.newSessionsPerMinute !== undefined) out.newSessionsPerMinute = grant.newSessionsPerMinute;
  return out;
}

const noGrant: Grant = { concurrency: 0 };

/** Session demand is a rate over this window: short, so that the split follows callers who move. */
const sessionDemandWindowMs = 10_000;

/** The same budget at the same spec generation. */
function sameSpec(a: StreamBudget, b: StreamBudget | undefined): boolean {
  return (
    b !== undefined &&
    a.metadata.uid !== undefined &&
    a.metadata.uid === b.metadata.uid &&
    a.metadata.generation !== undefined &&
    a.metadata.generation === b.metadata.generation
  );
}

// ---------------------------------------------------------------------------------------
// The sync: what is enforced, with which grant, and what is reported.

/** One budget this pod enforces or still reports on. */
interface Entry {
  name: string;
  /** namespace/name, as budgets go by in metrics and logs. */
  key: string;
  gate: BudgetGate;
  /** The budget as last seen; undefined for a lease whose budget was gone before this run started. */
  budget: StreamBudget | undefined;
  enforced: EnforcedBudget | undefined;
  lease: StreamLease | undefined;
  /** The lease's own grant when it applies (selected, budget there, lease not going); else none. */
  target: Grant;
  epochInForce: number | undefined;
  fence: Fence;
  schedule: WriteSchedule;
  demand: DemandWindow;
  sessions: RecentCount;
  sessionDemand: RecentCount;
  /** The lease taken up: its counters from before this run, and the gate's own counters at that moment. */
  base: { uid: string | undefined; reported: LeaseTotals; gate: LeaseTotals };
  /** The last report written successfully, and the last one sent. */
  written: LeaseReport | undefined;
  attempted: LeaseReport | undefined;
  writing: boolean;
  /** Whether the fence is shown as up (metric and logs). */
  shownFenced: boolean;
}

export interface LeaseSyncOptions {
  pod: PodIdentity;
  kubeConfig: KubeConfig;
  admission: Admission;
  metrics: SidecarMetrics;
  log: Logger;
  clock?: Clock;
  /** How often usage is sampled and writes are considered. */
  tickMs?: number;
}

/** Defaults of a budget whose object was never seen (a lease left over after its budget was deleted). */
const unknownBudgetTimings = leaseTimings({
  spec: { allocation: { leaseDurationSeconds: 30, strategy: 'Demand', minPerPod: 1 } },
} as Pick<StreamBudget, 'spec'>);
const unknownBudgetReleaseDelayMs = 10_000 + releaseMarginMs;

function settingsFor(key: string, budget: StreamBudget | undefined): BudgetSettings {
  return {
    name: key,
    queueTimeoutMs: budget?.spec.admission.queueTimeoutMs ?? 0,
    maxQueueLength: budget?.spec.admission.maxQueueLength ?? 0,
    releaseDelayMs: budget === undefined ? unknownBudgetReleaseDelayMs : slotHoldMs(budget),
  };
}

/** What stands for every budget until the first lists are in: it covers every stream and grants nothing. */
function unsyncedBudget(namespace: string): StreamBudget {
  return {
    apiVersion: streamBudgetResource.apiVersion,
    kind: streamBudgetResource.kind,
    metadata: { name: '(not synced)', namespace },
    spec: {
      provider: 'deepgram',
      projectId: 'none',
      upstream: 'ws://127.0.0.1',
      podSelector: {},
      maxConcurrentStreams: 1,
      allocation: { strategy: 'Demand', minPerPod: 0, leaseDurationSeconds: 30 },
      admission: { queueTimeoutMs: 0, maxQueueLength: 0 },
      reaping: {
        idleTimeoutSeconds: 30,
        pingIntervalSeconds: 15,
        maxStreamSeconds: 14400,
        upstreamReleaseDelaySeconds: 0,
      },
    },
  };
}

/** Keeps the pod's budgets, gates and leases in step with the API. */
export class LeaseSync {
  readonly #pod: PodIdentity;
  readonly #admission: Admission;
  readonly #metrics: SidecarMetrics;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #tickMs: number;
  readonly #kubeConfig: PooledKubeConfig;
  readonly #custom: CustomObjectsApi;
  /** The namespace's budgets, this pod's leases, and this pod (for its labels). */
  readonly #budgets: Informer<StreamBudget>;
  readonly #leases: Informer<StreamLease>;
  readonly #pods: Informer<V1Pod>;
  #synced = false;
  #reconcileQueued = false;
  /** Leases of the first list: their status is what a previous run of the sidecar left. */
  #inherited: Map<string, StreamLease> | undefined;
  readonly #entries = new Map<string, Entry>();
  #enforced: EnforcedBudget[];
  readonly #unsynced: EnforcedBudget;
  #timer: unknown;
  #stopped = false;
  #warnedForeignPod = false;

  constructor(options: LeaseSyncOptions) {
    this.#pod = options.pod;
    this.#admission = options.admission;
    this.#metrics = options.metrics;
    this.#log = options.log.child({ pod: options.pod.name });
    this.#clock = options.clock ?? systemClock;
    this.#tickMs = options.tickMs ?? 100;
    // Heartbeats and acks go over a kept connection, not a new TLS handshake each.
    const kubeConfig = PooledKubeConfig.from(options.kubeConfig);
    this.#kubeConfig = kubeConfig;
    this.#custom = kubeConfig.makeApiClient(CustomObjectsApi);
    const namespace = this.#pod.namespace;
    // Until the first lists are in, every stream is refused as without a grant: a stream
    // must never slip through uncounted (SLUICE_UNMATCHED=pass) before its budget is known.
    const unsyncedKey = `${namespace}/(not synced)`;
    this.#unsynced = {
      key: unsyncedKey,
      budget: unsyncedBudget(namespace),
      gate: new BudgetGate(settingsFor(unsyncedKey, undefined), noGrant, this.#clock.now()),
      matcher: new RouteMatcher(undefined),
      upstream: new URL('ws://127.0.0.1'),
    };
    this.#enforced = [this.#unsynced];
    const watching = {
      namespace,
      // No list may hang, and a fleet of sidecars must not retry in step against one API server.
      listTimeoutMs: 15_000,
      initialBackoffMs: 200,
      maxBackoffMs: 5000,
      jitter: 0.2,
      clock: this.#clock,
      log: this.#log,
    };
    this.#budgets = new Informer(kubeConfig, { ...watching, resource: streamBudgetResource });
    this.#leases = new Informer(kubeConfig, {
      ...watching,
      resource: streamLeaseResource,
      labelSelector: `${podUidLabel}=${this.#pod.uid}`,
    });
    this.#pods = new Informer(kubeConfig, {
      ...watching,
      resource: podsResource,
      fieldSelector: `metadata.name=${this.#pod.name}`,
    });
    const changed = () => this.#reconcileSoon();
    for (const informer of this.#informers()) {
      informer.addHandlers({ onAdd: changed, onUpdate: changed, onDelete: changed });
    }
  }

  /** True once budgets, leases and the pod have each been listed. */
  get synced(): boolean {
    return this.#synced;
  }

  /** The budgets streams are charged to now (the proxy asks for every stream). */
  budgets(): EnforcedBudget[] {
    return this.#enforced;
  }

  start(): void {
    const informers = this.#informers();
    for (const informer of informers) informer.start();
    // Before any watch event (those come after a timer): exactly the leases of the first list.
    this.#leases.synced().then(
      () => {
        this.#inherited = new Map(this.#leases.list().map((lease) => [lease.spec.budgetName, lease]));
      },
      () => undefined,
    );
    Promise.all(informers.map((informer) => informer.synced())).then(
      () => this.#onSynced(),
      () => undefined,
    );
    this.#tick();
  }

  /**
   * Stops watching and writing, after one last status write per lease (bounded by
   * `timeoutMs`) so the operator sees the usage the sidecar leaves behind.
   */
  async stop(timeoutMs = 2000): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    // Not awaited: a watch still connecting ends only once the API server answers, and
    // shutdown must not wait for an API server that is away.
    for (const informer of this.#informers()) void informer.stop();
    if (this.#timer !== undefined) this.#clock.clearTimer(this.#timer);
    const now = this.#clock.now();
    await Promise.all(
      [...this.#entries.values()]
        .filter((entry) => entry.lease && !entry.writing)
        .map((entry) => this.#write(entry, this.#report(entry, now), now, timeoutMs)),
    );
    this.#kubeConfig.close();
  }

  #informers(): [Informer<StreamBudget>, Informer<StreamLease>, Informer<V1Pod>] {
    return [this.#budgets, this.#leases, this.#pods];
  }

  #onSynced(): void {
    if (this.#stopped) return;
    this.#synced = true;
    this.#log.info(
      {
        budgets: this.#budgets.list().length,
        leases: this.#leases.list().length,
        podFound: this.#podObject() !== undefined,
      },
      'Synced with the API',
    );
    this.#reconcile();
  }

  /**
   * Reconciles once the informer has told all it has to tell: a relist reports its
   * changes one by one, and an entry must not be dropped for a state halfway through.
   */
  #reconcileSoon(): void {
    if (this.#reconcileQueued) return;
    this.#reconcileQueued = true;
    queueMicrotask(() => {
      this.#reconcileQueued = false;
      this.#reconcile();
    });
  }

  #podObject(): V1Pod | undefined {
    return this.#pods.get(this.#pod.namespace, this.#pod.name);
  }

  /** The pod's labels, or undefined while the pod is unknown (or is another pod of the same name). */
  #labels(): Record<string, string> | undefined {
    const pod = this.#podObject();
    if (!pod) return undefined;
    if (pod.metadata?.uid !== this.#pod.uid) {
      if (!this.#warnedForeignPod) {
        this.#warnedForeignPod = true;
        this.#log.warn({ uid: pod.metadata?.uid }, 'Found another pod under this name; selected no budget');
      }
      return undefined;
    }
    return pod.metadata?.labels ?? {};
  }

  /** The lease for a budget; of two (one going), the one that stays. */
  #leaseFor(budgetName: string): StreamLease | undefined {
    let found: StreamLease | undefined;
    for (const lease of this.#leases.list()) {
      if (lease.spec?.budgetName !== budgetName || lease.spec.podUID !== this.#pod.uid) continue;
      if (!found || (found.metadata?.deletionTimestamp && !lease.metadata?.deletionTimestamp)) found = lease;
    }
    return found;
  }

  /** Brings every entry in line with what the API says: level-triggered, idempotent. */
  #reconcile(now = this.#clock.now()): void {
    if (!this.#synced || this.#stopped) return;
    const labels = this.#labels();
    const names = new Set(this.#entries.keys());
    for (const budget of this.#budgets.list()) {
      if (labels && selects(budget.spec.podSelector, labels)) names.add(budget.metadata?.name ?? '');
    }
    for (const lease of this.#leases.list()) {
      if (lease.spec?.budgetName && lease.spec.podUID === this.#pod.uid) names.add(lease.spec.budgetName);
    }

    let listChanged = this.#enforced[0] === this.#unsynced;
    let grantsChanged = false;
    for (const name of names) {
      const budget = this.#budgets.get(this.#pod.namespace, name);
      const selected = budget !== undefined && labels !== undefined && selects(budget.spec.podSelector, labels);
      const lease = this.#leaseFor(name);
      let entry = this.#entries.get(name);
      if (!selected && !lease) {
        if (entry) {
          this.#remove(entry);
          listChanged = true;
        }
        continue;
      }
      if (!entry) {
        entry = this.#create(name, budget, now);
        listChanged = true;
      }
      // Only a new spec matters here; the operator's status writes (frequent) change nothing.
      if (budget && !sameSpec(budget, entry.budget)) {
        this.#takeBudget(entry, budget);
        listChanged = true;
      }
      if (lease && lease.metadata?.uid !== entry.base.uid) this.#takeLease(entry, lease);
      entry.lease = lease;
      entry.target =
        lease && selected && !lease.metadata?.deletionTimestamp && budget ? grantOf(lease.spec.grant) : noGrant;
      if (this.#putInForce(entry, now)) grantsChanged = true;
    }
    if (listChanged) {
      this.#enforced = [...this.#entries.values()].flatMap((e) => (e.enforced ? [e.enforced] : []));
    }
    // Room may have appeared (a raise, a lifted fence): hand it to the waiting streams.
    if (grantsChanged) this.#admission.pump();
    for (const entry of this.#entries.values()) this.#considerWrite(entry, now);
  }

  #create(name: string, budget: StreamBudget | undefined, now: number): Entry {
    const key = `${this.#pod.namespace}/${name}`;
    const timings = budget ? leaseTimings(budget) : unknownBudgetTimings;
    const gate = new BudgetGate(settingsFor(key, budget), noGrant, now);
    const entry: Entry = {
      name,
      key,
      gate,
      budget: undefined,
      enforced: undefined,
      lease: undefined,
      target: noGrant,
      epochInForce: undefined,
      fence: new Fence(timings.fenceAfterMs),
      schedule: new WriteSchedule(timings),
      demand: new DemandWindow(),
      sessions: new RecentCount(60_000),
      sessionDemand: new RecentCount(sessionDemandWindowMs),
      base: { uid: undefined, reported: reportedTotals(undefined), gate: gateTotals(gate) },
      written: undefined,
      attempted: undefined,
      writing: false,
      shownFenced: false,
    };
    this.#entries.set(name, entry);
    if (budget) this.#takeBudget(entry, budget);
    // A lease this run found at its start may hold streams a previous run left open
    // upstream: they count as stale slots for the release delay, before anything is admitted.
    // A previous run could have had open as many as it last reported, or as many as any
    // grant it may have put in force allowed (it may have died between putting a grant in
    // force and acknowledging it). A lease with no status never had a run that admitted:
    // a sidecar admits nothing before its first successful write.
    const inherited = this.#inherited?.get(name);
    if (inherited) {
      this.#inherited?.delete(name);
      const held = holdInherited(gate, inherited, now);
      if (held > 0) {
        this.#log.info(
          { budget: key, slots: held, seconds: gate.settings.releaseDelayMs / 1000 },
          'Held slots a previous run reported',
        );
      }
      this.#takeLease(entry, inherited);
    }
    entry.demand.record(now, 0, 0);
    entry.sessions.record(now, 0);
    entry.sessionDemand.record(now, 0);
    this.#metrics.fenced.set({ budget: key }, 0);
    this.#log.info({ budget: key, lease: this.#leaseFor(name)?.metadata?.name }, 'Enforced budget');
    return entry;
  }

  #remove(entry: Entry): void {
    this.#entries.delete(entry.name);
    this.#metrics.fenced.remove({ budget: entry.key });
    this.#metrics.grantEpoch.remove({ budget: entry.key });
    this.#log.info({ budget: entry.key, open: entry.gate.open }, 'Stopped enforcing budget');
  }

  /** A new version of the budget: same gate (its open streams and held slots), new settings and timings. */
  #takeBudget(entry: Entry, budget: StreamBudget): void {
    entry.budget = budget;
    Object.assign(entry.gate.settings, settingsFor(entry.key, budget));
    const timings = leaseTimings(budget);
    entry.fence.fenceAfterMs = timings.fenceAfterMs;
    entry.schedule.timings = timings;
    try {
      entry.enforced = {
        key: entry.key,
        budget,
        gate: entry.gate,
        matcher: new RouteMatcher(budget.spec.match),
        upstream: new URL(budget.spec.upstream),
      };
    } catch (error) {
      // The API server validates budgets; keep the last good version if one is ever unreadable.
      this.#log.error({ budget: entry.key, err: (error as Error).message }, 'Ignored an unreadable budget');
    }
  }

  /** A lease (new, or recreated under the same name): its counters continue from what it reports. */
  #takeLease(entry: Entry, lease: StreamLease): void {
    entry.base = { uid: lease.metadata?.uid, reported: reportedTotals(lease.status), gate: gateTotals(entry.gate) };
    // Nothing is admitted under a lease before a status write to it succeeded: the operator
    // takes a lease without status for one whose pod never streamed.
    entry.fence = new Fence(entry.fence.fenceAfterMs);
    // Nothing was written to this lease yet: the first write is its acknowledgement.
    entry.written = undefined;
    entry.attempted = undefined;
  }

  /** Puts the entry's grant in force, or none while fenced. True when the gate's grant changed. */
  #putInForce(entry: Entry, now: number): boolean {
    const fenced = entry.fence.fenced(now);
    // Shown (metric, logs) only with a lease: a budget without one has no grant to fence.
    const shown = entry.lease !== undefined && fenced;
    if (shown !== entry.shownFenced) {
      entry.shownFenced = shown;
      this.#metrics.fenced.set({ budget: entry.key }, shown ? 1 : 0);
      if (shown && entry.fence.fallsAt() !== undefined) {
        this.#log.warn(
          { budget: entry.key, open: entry.gate.open, fenceAfterMs: entry.fence.fenceAfterMs },
          'Fenced budget: no status write succeeded in time; admitting nothing new',
        );
      } else if (!fenced) {
        this.#log.info({ budget: entry.key }, 'Lifted fence');
      }
    }
    const inForce = fenced ? { ...entry.target, concurrency: 0 } : entry.target;
    const epoch = entry.lease?.spec.epoch;
    if (epoch !== undefined && epoch !== entry.epochInForce) {
      entry.epochInForce = epoch;
      this.#metrics.grantEpoch.set({ budget: entry.key }, epoch);
    }
    if (sameGrant(entry.gate.grant, inForce)) return false;
    entry.gate.updateGrant(inForce, now);
    return true;
  }

  #report(entry: Entry, now: number): LeaseReport {
    const { gate } = entry;
    const totals = gateTotals(gate);
    const inUse = gate.inUse(now);
    const queued = gate.waiting;
    entry.demand.record(now, inUse + queued, totals.rejectedTotal);
    entry.sessions.record(now, gate.admitted);
    entry.sessionDemand.record(now, gate.admitted + gate.rejected['session-rate']);
    return {
      observedEpoch: entry.lease?.spec.epoch ?? 0,
      // The grant in force apart from the fence: the write that carries it lifts the fence.
      grant: entry.target,
      inUse,
      staleSlots: gate.stale(now),
      queued,
      demand: entry.demand.demand(now),
      sessionsLastMinute: entry.sessions.count(now),
      sessionDemand: Math.round(entry.sessionDemand.count(now) * (60_000 / sessionDemandWindowMs)) + queued,
      sessionWindow: gate.sessionWindow(now),
      sessionWindowInherited: gate.sessionWindowInherited(now),
      ...continuedTotals(entry.base, totals),
    };
  }

  #considerWrite(entry: Entry, now: number): void {
    if (!entry.lease || entry.writing || this.#stopped) return;
    const report = this.#report(entry, now);
    let pending = pendingWrite(entry.written, report);
    // An acknowledgement already tried (and failed) is retried like any other write.
    if (pending === 'ack' && entry.attempted && pendingWrite(entry.attempted, report) !== 'ack') pending = 'change';
    if (entry.schedule.dueAt(pending) <= now) {
      void this.#write(entry, report, now, entry.schedule.timings.writeTimeoutMs);
    }
  }

  /** One status write: a merge patch of the status subresource, as the sidecar's field manager. */
  async #write(entry: Entry, report: LeaseReport, sentAt: number, timeoutMs: number): Promise<void> {
    const lease = entry.lease as StreamLease;
    // A write lifts the fence of the lease it went to, not of one taken up meanwhile.
    const fence = entry.fence;
    entry.writing = true;
    entry.attempted = report;
    entry.schedule.sent(sentAt);
    try {
      await this.#custom.patchNamespacedCustomObjectStatus(
        {
          ...streamLeaseResource,
          namespace: this.#pod.namespace,
          name: lease.metadata?.name ?? '',
          body: statusPatch(report, new Date()),
          fieldManager: sidecarManager,
        },
        requestOptions({ timeoutMs, contentType: PatchStrategy.MergePatch }),
      );
      const acknowledged = pendingWrite(entry.written, report) === 'ack';
      const failures = entry.schedule.failures;
      fence.succeeded(sentAt);
      entry.schedule.succeeded();
      entry.written = report;
      this.#metrics.leaseWrites.inc({ budget: entry.key, result: 'ok' });
      if (failures > 0) this.#log.info({ budget: entry.key, failures }, 'Resumed status writes');
      if (acknowledged) {
        this.#log.info(
          {
            budget: entry.key,
            lease: lease.metadata?.name,
            epoch: report.observedEpoch,
            grant: report.grant,
            inUse: report.inUse,
          },
          'Acknowledged grant',
        );
      }
    } catch (error) {
      entry.schedule.failed(this.#clock.now());
      const failure = describeFailure(error);
      this.#metrics.leaseWrites.inc({ budget: entry.key, result: failure.code === 404 ? 'not-found' : 'error' });
      const failures = entry.schedule.failures;
      if (failures === 1 || failures % 10 === 0) {
        this.#log.warn(
          { budget: entry.key, lease: lease.metadata?.name, failures, ...failure },
          'Failed to write lease status',
        );
      }
    } finally {
      entry.writing = false;
    }
    if (this.#entries.get(entry.name) === entry) this.#reconcile();
  }

  /** Samples usage, lets fences fall on time, and sends the writes that are due. */
  #tick(): void {
    if (this.#stopped) return;
    const now = this.#clock.now();
    this.#reconcile(now);
    // Wake at the next tick, or earlier when a fence is due to fall: it must not fall late.
    let next = now + this.#tickMs;
    for (const entry of this.#entries.values()) {
      const falls = entry.fence.fallsAt();
      if (falls !== undefined && falls > now) next = Math.min(next, falls);
    }
    this.#timer = this.#clock.setTimer(() => this.#tick(), Math.max(1, next - now));
  }
}
