/**
 * A whole fleet in one process, stepped on a simulated clock. The decisions are the
 * product's own: each operator replica runs planBudget over its caches, each sidecar
 * enforces with BudgetGate, Fence, the lease timings, the restart hold and the demand
 * window, exactly as shipped. What is simulated around them is what the product does not
 * decide: an API store with optimistic concurrency and the garbage collector, caches
 * that lag, leader election, paused processes, crashes, partitions, clocks that drift,
 * clients, and an upstream that counts streams and session starts the way the provider
 * does — noticing ends a little later than the sidecar, and holding unclean ends for its
 * release delay. The property tests check the invariants on the upstream's own count.
 */
import type { V1Pod } from '@kubernetes/client-node';
import {
  leaseTimings,
  type StreamBudget,
  type StreamLease,
  type StreamLeaseStatus,
  slotHoldMs,
  slotsHeldFinalizer,
} from '../../crds/api/index.js';
import { type GrantWrite, type PlannerMemory, planBudget, recordWrite } from '../../operator/plan-budget.js';
import { BudgetGate, type Grant } from '../../sidecar/admission.js';
import { DemandWindow, Fence, holdInherited, RecentCount } from '../../sidecar/lease-sync.js';
import { type AutoscaleRule, SessionLimit } from '../emulator/session-limit.js';

export interface FleetSettings {
  limit: number;
  minPerPod: number;
  sessionsPerMinute?: number;
  autoscale?: AutoscaleRule;
  /** How the provider rounds its steps; down by default, as documented. */
  providerRounding?: 'down' | 'up';
  /** Whole seconds, as a budget declares it. */
  leaseDurationMs: number;
  /** The provider's release delay of unclean ends, whole seconds; the budget declares the same. */
  releaseDelayMs: number;
  tickMs: number;
  strategy?: 'Demand' | 'Equal';
  /** Streams end now and then (cleanly or not); off for steady-state checks. */
  churn?: boolean;
  /** Status writes get lost and sidecars crash between putting a grant in force and acknowledging it. */
  chaos?: boolean;
  /** The upstream notices an unclean end up to this much later than the sidecar (default: 2 s, as documented). */
  upstreamLagMs?: number;
  /** Each sidecar's clock runs at a rate within 1 ± this of the operators'. */
  clockDrift?: number;
  /** The budget's maxStreamSeconds, in ms (whole seconds): sidecars end streams this old. */
  maxStreamMs?: number;
  /** The chance per tick that a stream's client hangs up (default 0.025, a fifth of them uncleanly). */
  hangUpChance?: number;
}

/** A tiny seeded PRNG (mulberry32), so a failing case replays exactly. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const namespace = 'fleet';
const budgetName = 'budget';
const budgetKey = `${namespace}/${budgetName}`;
const selected = { app: 'fleet' };
/**
 * How much later than the sidecar the provider may notice an unclean end: the documented
 * bound sluice's holds cover. The model's own figure, so that a product whose margin no
 * longer covers it fails here.
 */
export const providerLagMs = 2000;
/** Wall-clock time of the simulation's start, for heartbeat times and condition transitions. */
const wallBase = Date.UTC(2026, 0, 1);

function budgetOf(s: FleetSettings, limit: number): StreamBudget {
  return {
    apiVersion: 'sluice.dev/v1alpha1',
    kind: 'StreamBudget',
    metadata: { name: budgetName, namespace, uid: 'budget-uid', generation: 1, finalizers: [slotsHeldFinalizer] },
    spec: {
      provider: 'deepgram',
      projectId: 'p',
      upstream: 'ws://upstream',
      podSelector: { matchLabels: selected },
      maxConcurrentStreams: limit,
      ...(s.sessionsPerMinute !== undefined && {
        newSessions: { perMinute: s.sessionsPerMinute, ...(s.autoscale && { autoscale: s.autoscale }) },
      }),
      allocation: {
        strategy: s.strategy ?? 'Demand',
        minPerPod: s.minPerPod,
        leaseDurationSeconds: s.leaseDurationMs / 1000,
      },
      admission: { queueTimeoutMs: 0, maxQueueLength: 0 },
      reaping: {
        idleTimeoutSeconds: 30,
        pingIntervalSeconds: 1,
        maxStreamSeconds: (s.maxStreamMs ?? 600_000) / 1000,
        upstreamReleaseDelaySeconds: s.releaseDelayMs / 1000,
      },
    },
  } as StreamBudget;
}

/** The API server: objects with resource versions, optimistic concurrency, finalizers and the garbage collector. */
class Store {
  budget: StreamBudget;
  readonly leases = new Map<string, StreamLease>();
  readonly pods = new Map<string, V1Pod>();
  /** For each lease, the budget generation each of its epochs was computed under. */
  readonly generations = new Map<string, Map<number, number>>();
  #version = 0;

  constructor(budget: StreamBudget) {
    this.budget = budget;
  }

  bump<T extends { metadata?: object }>(object: T): T {
    (object.metadata as { resourceVersion?: string }).resourceVersion = String(++this.#version);
    return object;
  }

  create(body: StreamLease, generation: number): boolean {
    const name = body.metadata.name as string;
    if (this.leases.has(name)) return false;
    this.generations.set(name, new Map([[1, generation]]));
    this.leases.set(
      name,
      this.bump(structuredClone({ ...body, metadata: { ...body.metadata, uid: `lease-${this.#version}` } })),
    );
    return true;
  }

  /** The JSON patch that tests /spec/epoch. */
  grant(name: string, epoch: number, grant: Grant, generation: number): boolean {
    const lease = this.leases.get(name);
    if (!lease || lease.spec.epoch !== epoch) return false;
    this.generations.get(name)?.set(epoch + 1, generation);
    lease.spec = { ...lease.spec, grant: { ...grant }, epoch: epoch + 1 };
    this.bump(lease);
    return true;
  }

  status(name: string, uid: string, status: StreamLeaseStatus): boolean {
    const lease = this.leases.get(name);
    if (!lease || lease.metadata.uid !== uid) return false;
    lease.status = status;
    this.bump(lease);
    return true;
  }

  /** The reconciler's release: the finalizer goes if the lease is as seen, then the object. */
  release(seen: StreamLease): void {
    const lease = this.leases.get(seen.metadata.name as string);
    if (!lease || lease.metadata.resourceVersion !== seen.metadata.resourceVersion) return;
    this.leases.delete(seen.metadata.name as string);
  }

  /** The garbage collector deletes what a vanished pod owned; the finalizer keeps the lease meanwhile. */
  collect(rng: () => number, now: number): void {
    const uids = new Set([...this.pods.values()].map((p) => p.metadata?.uid));
    for (const lease of this.leases.values()) {
      if (!lease.metadata.deletionTimestamp && !uids.has(lease.spec.podUID) && rng() < 0.5) {
        lease.metadata.deletionTimestamp = new Date(wallBase + now);
        this.bump(lease);
      }
    }
  }

  leaseOf(podUID: string): StreamLease | undefined {
    let found: StreamLease | undefined;
    for (const lease of this.leases.values()) {
      if (lease.spec.podUID !== podUID) continue;
      if (!found || (found.metadata.deletionTimestamp && !lease.metadata.deletionTimestamp)) found = lease;
    }
    return found;
  }
}

/** The provider: streams and slots as it counts them, and its new-session limit. */
class Upstream {
  readonly open = new Set<string>();
  held: number[] = [];
  /** Ends the sidecars saw that the upstream has not noticed yet. */
  #noticing: { id: string; at: number; clean: boolean }[] = [];
  readonly sessions: SessionLimit | undefined;
  peak = 0;
  readonly violations: string[] = [];
  /** When each session started, as the provider counts them. */
  readonly startTimes: number[] = [];
  /** Moments the leader's model of the new-session limit was above the provider's. */
  readonly modelAhead: string[] = [];

  constructor(
    readonly settings: FleetSettings,
    now: number,
  ) {
    this.sessions =
      settings.sessionsPerMinute === undefined
        ? undefined
        : new SessionLimit(
            {
              perMinute: settings.sessionsPerMinute,
              ...(settings.autoscale && { autoscale: settings.autoscale }),
              ...(settings.providerRounding && { rounding: settings.providerRounding }),
            },
            now,
          );
  }

  count(now: number): number {
    const due = this.#noticing.filter((e) => e.at <= now);
    if (due.length > 0) {
      this.#noticing = this.#noticing.filter((e) => e.at > now);
      for (const end of due) {
        this.open.delete(end.id);
        if (!end.clean) this.held.push(end.at + this.settings.releaseDelayMs);
      }
    }
    this.held = this.held.filter((until) => until > now);
    return this.open.size + this.held.length;
  }

  start(id: string, now: number, limit: number): void {
    this.open.add(id);
    const count = this.count(now);
    this.peak = Math.max(this.peak, count);
    if (count > limit) this.violations.push(`t=${now}: ${count} streams open upstream, limit ${limit}`);
    if (this.sessions) {
      const starts = this.sessions.startsInWindow(now);
      const allowed = this.sessions.limit(now);
      if (starts >= allowed)
        this.violations.push(`t=${now}: ${starts + 1} starts in 60 s, provider's limit ${allowed}`);
      this.sessions.record(now);
      this.startTimes.push(now);
    }
  }

  end(id: string, at: number, clean: boolean): void {
    if (this.open.has(id)) this.#noticing.push({ id, at, clean });
  }
}

const noGrant: Grant = { concurrency: 0 };

function grantOf(lease: StreamLease): Grant {
  const grant = lease.spec.grant;
  return {
    concurrency: grant.concurrency,
    ...(grant.newSessionsPerMinute !== undefined && { newSessionsPerMinute: grant.newSessionsPerMinute }),
  };
}

/** One sidecar process: the product's gate, fence, restart hold and demand window, on its own clock. */
class SimSidecar {
  readonly gate: BudgetGate;
  fence: Fence;
  readonly demandWindow = new DemandWindow();
  readonly sessions = new RecentCount(60_000);
  readonly sessionDemand = new RecentCount(10_000);
  readonly streams = new Map<string, number>();
  /** The lease taken up, and the epoch put in force. */
  leaseUid: string | undefined;
  appliedEpoch = -1;
  target: Grant = noGrant;
  lastHeartbeat = Number.NEGATIVE_INFINITY;
  /** Cut off from the API (its streams go on) until this time, for this long. */
  partitionedUntil = Number.NEGATIVE_INFINITY;
  partitionTicks = 0;

  constructor(
    readonly pod: string,
    readonly uid: string,
    readonly fleet: Fleet,
    readonly rate: number,
    now: number,
  ) {
    const local = this.local(now);
    this.gate = new BudgetGate(
      { name: budgetKey, queueTimeoutMs: 0, maxQueueLength: 0, releaseDelayMs: slotHoldMs(fleet.store.budget) },
      noGrant,
      local,
    );
    this.fence = new Fence(fleet.timings.fenceAfterMs);
    // A restart forgets nothing: whatever the last run may have had open is held.
    const lease = fleet.store.leaseOf(uid);
    if (lease) {
      holdInherited(this.gate, lease, local);
      this.leaseUid = lease.metadata.uid;
    }
    this.demandWindow.record(local, 0, 0);
    this.sessions.record(local, 0);
    this.sessionDemand.record(local, 0);
  }

  /** Its monotonic clock. */
  local(now: number): number {
    return now * this.rate;
  }

  partitioned(now: number): boolean {
    return now < this.partitionedUntil;
  }

  /** The grant in force: the lease's, or nothing while fenced (the sidecar's timer at the fence's fall). */
  #putInForce(local: number): void {
    const inForce = this.fence.fenced(local) ? { ...this.target, concurrency: 0 } : this.target;
    const now = this.gate.grant;
    if (now.concurrency !== inForce.concurrency || now.newSessionsPerMinute !== inForce.newSessionsPerMinute) {
      this.gate.updateGrant(inForce, local);
    }
  }

  tryAdmit(now: number): boolean {
    const local = this.local(now);
    this.#putInForce(local);
    const blocker = this.gate.blocker(local);
    if (blocker !== undefined) {
      this.gate.rejected[blocker] += 1;
      return false;
    }
    this.gate.take(local);
    const id = `${this.pod}#${this.fleet.nextStreamId++}`;
    this.streams.set(id, local);
    this.fleet.upstream.start(id, now, this.fleet.limitInForce());
    return true;
  }

  end(id: string, now: number, clean: boolean): void {
    if (!this.streams.delete(id)) return;
    this.gate.release(this.local(now), clean);
    // A clean end is a completed close handshake: the upstream knew before the sidecar did.
    this.fleet.upstream.end(id, clean ? now : now + this.fleet.lag(), clean);
  }

  /** Every stream ends uncleanly at once: the process is gone. */
  die(now: number): void {
    for (const id of [...this.streams.keys()]) {
      this.streams.delete(id);
      this.fleet.upstream.end(id, now + this.fleet.lag(), false);
    }
  }

  /** Streams past the maximum duration are ended (CloseStream: a clean end). */
  reap(now: number): void {
    const local = this.local(now);
    const max = this.fleet.store.budget.spec.reaping.maxStreamSeconds * 1000;
    for (const [id, startedAt] of this.streams) if (local - startedAt >= max) this.end(id, now, true);
  }

  /** One round of lease sync: see the lease, put its grant in force, acknowledge; or heartbeat. */
  sync(now: number, rng: () => number, apiUp: boolean): void {
    const local = this.local(now);
    if (!apiUp || this.partitioned(now)) {
      this.#putInForce(local);
      return;
    }
    const store = this.fleet.store;
    const lease = store.leaseOf(this.uid);
    const pod = store.pods.get(this.pod);
    const ours = pod?.metadata?.uid === this.uid;
    const isSelected = ours && pod?.metadata?.labels?.app === selected.app;
    if (lease && lease.metadata.uid !== this.leaseUid) {
      // A lease taken up: nothing is admitted under it before a write to it succeeded.
      this.leaseUid = lease.metadata.uid;
      this.appliedEpoch = -1;
      this.fence = new Fence(this.fleet.timings.fenceAfterMs);
    }
    if (!lease) {
      this.target = noGrant;
      this.#putInForce(local);
      return;
    }
    const fresh = lease.spec.epoch !== this.appliedEpoch;
    // The watch brings a new epoch a little late, now and then.
    if (fresh && rng() < 0.8) {
      this.target = isSelected && !lease.metadata.deletionTimestamp ? grantOf(lease) : noGrant;
      this.appliedEpoch = lease.spec.epoch;
      this.#putInForce(local);
      // The process may die between putting a grant in force and acknowledging it.
      if (this.fleet.chaos && rng() < 0.05) {
        this.fleet.crashSidecar(this.pod, now);
        return;
      }
      this.#writeStatus(lease, now, rng);
    } else if (local - this.lastHeartbeat >= this.fleet.timings.heartbeatMs) {
      this.#writeStatus(lease, now, rng);
    }
    this.#putInForce(local);
  }

  #writeStatus(lease: StreamLease, now: number, rng: () => number): void {
    const local = this.local(now);
    this.lastHeartbeat = local;
    if (this.fleet.chaos && rng() < 0.05) return; // lost on the way
    const inUse = this.gate.inUse(local);
    const { rejected } = this.gate;
    this.demandWindow.record(local, inUse, rejected.concurrency + rejected['session-rate'] + rejected['no-grant']);
    this.sessions.record(local, this.gate.admitted);
    this.sessionDemand.record(local, this.gate.admitted + rejected['session-rate']);
    const written = this.fleet.store.status(lease.metadata.name as string, lease.metadata.uid as string, {
      observedEpoch: this.appliedEpoch,
      grant: { ...this.target },
      inUse,
      staleSlots: this.gate.stale(local),
      queued: 0,
      demand: this.demandWindow.demand(local),
      sessionsLastMinute: this.sessions.count(local),
      sessionDemand: this.sessionDemand.count(local) * 6,
      sessionWindow: this.gate.sessionWindow(local),
      sessionWindowInherited: this.gate.sessionWindowInherited(local),
      heartbeatTime: new Date(wallBase + now).toISOString(),
    });
    if (written) this.fence.succeeded(local);
  }
}

/** One operator process: informer caches that lag, leadership, and the product's planBudget. */
class SimOperator {
  memory: PlannerMemory = new Map();
  readonly cache = new Map<string, StreamLease>();
  readonly podCache = new Map<string, V1Pod>();
  budget: StreamBudget | undefined;
  leadingSince: number | undefined;
  lastRenew = Number.NEGATIVE_INFINITY;
  paused = false;
  /** The informers bring nothing until this time (a watch that broke and relists). */
  stalledUntil = Number.NEGATIVE_INFINITY;
  #generation = 0;

  constructor(
    readonly base: string,
    readonly fleet: Fleet,
  ) {}

  /** A process's identity in the election: a restarted process is a new candidate. */
  get id(): string {
    return `${this.base}-${this.#generation}`;
  }

  /** The process restarts: memory, caches and leadership are gone. */
  crash(): void {
    this.#generation += 1;
    this.forget();
    this.cache.clear();
    this.podCache.clear();
    this.budget = undefined;
  }

  /** Leadership lost or newly won: a term starts from what the API says. */
  forget(): void {
    this.memory = new Map();
    this.leadingSince = undefined;
    this.lastRenew = Number.NEGATIVE_INFINITY;
  }

  /**
   * The informers: each object's copy catches up with some delay, and now and then a
   * watch breaks and nothing arrives for up to a lease duration.
   */
  refresh(rng: () => number, now: number): void {
    if (now < this.stalledUntil) return;
    if (rng() < 0.01) {
      this.stalledUntil = now + rng() * this.fleet.settings.leaseDurationMs;
      return;
    }
    const store = this.fleet.store;
    if (this.budget?.metadata.generation !== store.budget.metadata.generation && rng() < 0.7) {
      this.budget = structuredClone(store.budget);
    }
    for (const [name, lease] of store.leases) {
      const cached = this.cache.get(name);
      if (cached?.metadata.resourceVersion !== lease.metadata.resourceVersion && rng() < 0.7) {
        this.cache.set(name, structuredClone(lease));
      }
    }
    for (const name of this.cache.keys()) if (!store.leases.has(name) && rng() < 0.7) this.cache.delete(name);
    for (const [name, pod] of store.pods) {
      const cached = this.podCache.get(name);
      if (cached?.metadata?.resourceVersion !== pod.metadata?.resourceVersion && rng() < 0.7) {
        this.podCache.set(name, structuredClone(pod));
      }
    }
    for (const name of this.podCache.keys()) if (!store.pods.has(name) && rng() < 0.7) this.podCache.delete(name);
  }

  reconcile(now: number): void {
    if (!this.budget) return;
    const fleet = this.fleet;
    const leading = this.leadingSince;
    const plan = planBudget(
      this.memory,
      {
        key: budgetKey,
        budget: this.budget,
        leases: [...this.cache.values()].filter((l) => l.spec.budgetName === budgetName),
        pods: [...this.podCache.values()],
        budgets: [this.budget],
        leadership: {
          mayRaise: (graceMs) =>
            leading !== undefined && now - leading >= graceMs && now - this.lastRenew <= fleet.renewDeadlineMs,
        },
        wallClock: new Date(wallBase + now),
      },
      { staleGoneHoldSeconds: undefined, demandHalfLifeSeconds: 2, peakWindowSeconds: 60, statusIntervalSeconds: 2 },
      now,
    );
    for (const write of plan.writes) recordWrite(this.memory, budgetKey, write, this.#perform(write), now);
    for (const lease of plan.releases) fleet.store.release(lease);
  }

  #perform(write: GrantWrite): boolean {
    const store = this.fleet.store;
    const generation = this.budget?.metadata.generation ?? 0;
    const ok =
      write.kind === 'create'
        ? store.create(write.body, generation)
        : store.grant(write.lease, write.epoch, write.grant, generation);
    if (ok) this.fleet.grantWrites += 1;
    return ok;
  }
}

/** Events the property tests schedule. */
export type FleetEvent =
  | { kind: 'addPod' }
  | { kind: 'drainPod'; pod: number }
  | { kind: 'deletePod'; pod: number }
  | { kind: 'killPod'; pod: number }
  | { kind: 'restartSidecar'; pod: number }
  | { kind: 'deselectPod'; pod: number }
  | { kind: 'restartOperator' }
  | { kind: 'pauseLeader'; ticks: number }
  | { kind: 'apiDown'; ticks: number }
  | { kind: 'partitionPod'; pod: number; ticks: number }
  | { kind: 'setDemand'; pod: number; streams: number }
  | { kind: 'lowerLimit'; to: number };

export class Fleet {
  readonly settings: FleetSettings;
  readonly store: Store;
  readonly upstream: Upstream;
  readonly sidecars = new Map<string, SimSidecar>();
  /** Sidecars of pods force-deleted while cut off: they stream on until the partition ends. */
  readonly zombies = new Set<SimSidecar>();
  readonly demand = new Map<string, number>();
  readonly operators: SimOperator[];
  readonly rng: () => number;
  readonly timings: ReturnType<typeof leaseTimings>;
  readonly renewDeadlineMs: number;
  leaseHolder: { id: string; observedAt: number } | undefined;
  now = 0;
  nextStreamId = 0;
  podCounter = 0;
  apiDownUntil = -1;
  rejections = 0;
  grantWrites = 0;
  chaos: boolean;
  /**
   * After a lowering, the old limit stays the measure until every sidecar acknowledged a
   * grant computed under the lowered budget.
   */
  lowering: { previous: number; generation: number } | undefined;
  readonly resumeAt = new Map<SimOperator, number>();

  constructor(settings: FleetSettings, seed: number, replicas = 2) {
    this.settings = settings;
    this.chaos = settings.chaos ?? true;
    this.rng = random(seed);
    this.store = new Store(budgetOf(settings, settings.limit));
    this.timings = leaseTimings(this.store.budget);
    this.upstream = new Upstream(settings, 0);
    this.renewDeadlineMs = (settings.leaseDurationMs * 2) / 3;
    this.operators = Array.from({ length: replicas }, (_, i) => new SimOperator(`op-${i}`, this));
  }

  get limit(): number {
    return this.store.budget.spec.maxConcurrentStreams;
  }

  /** How much later than the sidecar the upstream notices an end. */
  lag(): number {
    return Math.floor(this.rng() * ((this.settings.upstreamLagMs ?? providerLagMs) + 1));
  }

  podName(index: number): string | undefined {
    const names = [...this.store.pods.keys()];
    return names.length === 0 ? undefined : names[index % names.length];
  }

  addPod(streams = 0): string {
    const name = `pod-${this.podCounter++}`;
    const uid = `uid-${name}`;
    this.store.pods.set(
      name,
      this.store.bump({ metadata: { name, namespace, uid, labels: { ...selected } }, status: { phase: 'Running' } }),
    );
    this.#startSidecar(name, uid);
    this.demand.set(name, streams);
    return name;
  }

  #startSidecar(pod: string, uid: string): void {
    const drift = this.settings.clockDrift ?? 0;
    const rate = 1 + (this.rng() * 2 - 1) * drift;
    this.sidecars.set(pod, new SimSidecar(pod, uid, this, rate, this.now));
  }

  crashSidecar(pod: string, now: number): void {
    const sidecar = this.sidecars.get(pod);
    if (!sidecar) return;
    sidecar.die(now);
    this.sidecars.set(pod, new SimSidecar(pod, sidecar.uid, this, sidecar.rate, now));
  }

  apply(event: FleetEvent): void {
    const now = this.now;
    const store = this.store;
    switch (event.kind) {
      case 'addPod':
        this.addPod(Math.floor(this.rng() * this.limit));
        return;
      case 'setDemand': {
        const pod = this.podName(event.pod);
        if (pod) this.demand.set(pod, event.streams);
        return;
      }
      case 'drainPod': {
        const pod = store.pods.get(this.podName(event.pod) ?? '');
        if (pod?.metadata && !pod.metadata.deletionTimestamp) {
          pod.metadata.deletionTimestamp = new Date(wallBase + now);
          store.bump(pod);
        }
        return;
      }
      case 'deselectPod': {
        const pod = store.pods.get(this.podName(event.pod) ?? '');
        if (pod?.metadata) {
          pod.metadata.labels = { app: 'elsewhere' };
          store.bump(pod);
        }
        return;
      }
      case 'deletePod':
      case 'killPod': {
        // deletePod: the kubelet stopped the pod (its streams closed); killPod: deleted at once
        // with its processes killed. A pod cut off from the API is force-deleted only after
        // its lease went stale (as node eviction does): a sidecar that may still stream is
        // held only when it is known to be silent.
        const name = this.podName(event.pod);
        if (!name) return;
        const sidecar = this.sidecars.get(name);
        if (sidecar?.partitioned(now)) {
          if (
            now - (sidecar.partitionedUntil - sidecar.partitionTicks) <
            this.timings.staleAfterMs + this.timings.leaseDurationMs
          )
            return;
          this.zombies.add(sidecar);
        } else if (sidecar) {
          if (event.kind === 'deletePod') for (const id of [...sidecar.streams.keys()]) sidecar.end(id, now, true);
          sidecar.die(now);
        }
        this.sidecars.delete(name);
        store.pods.delete(name);
        this.demand.delete(name);
        return;
      }
      case 'restartSidecar': {
        const name = this.podName(event.pod);
        if (name) this.crashSidecar(name, now);
        return;
      }
      case 'partitionPod': {
        const sidecar = this.sidecars.get(this.podName(event.pod) ?? '');
        if (sidecar && !sidecar.partitioned(now)) {
          sidecar.partitionTicks = event.ticks * this.settings.tickMs;
          sidecar.partitionedUntil = now + sidecar.partitionTicks;
        }
        return;
      }
      case 'restartOperator':
        for (const operator of this.operators) if (operator.leadingSince !== undefined) operator.crash();
        return;
      case 'pauseLeader': {
        const leader = this.operators.find((o) => o.leadingSince !== undefined && !o.paused);
        if (leader) {
          leader.paused = true;
          this.resumeAt.set(leader, now + event.ticks * this.settings.tickMs);
        }
        return;
      }
      case 'apiDown':
        this.apiDownUntil = now + event.ticks * this.settings.tickMs;
        return;
      case 'lowerLimit': {
        const to = Math.max(1, Math.min(this.limit, event.to));
        if (to === this.limit) return;
        const previous = Math.max(this.limitInForce(), this.lowering?.previous ?? 0);
        store.budget = structuredClone(store.budget);
        store.budget.spec.maxConcurrentStreams = to;
        store.budget.metadata.generation = (store.budget.metadata.generation ?? 1) + 1;
        this.lowering = { previous, generation: store.budget.metadata.generation };
        return;
      }
    }
  }

  /** The limit the fleet can be held to now: a lowered one once every pod has heard of it. */
  limitInForce(): number {
    const lowering = this.lowering;
    if (!lowering) return this.limit;
    const running = new Set([...this.sidecars.values(), ...this.zombies].map((s) => s.uid));
    const heard = [...this.store.leases].every(([name, lease]) => {
      if (!running.has(lease.spec.podUID)) return true;
      const acked = lease.status?.observedEpoch ?? -1;
      const epochs = [...(this.store.generations.get(name) ?? [])];
      return epochs.some(([epoch, generation]) => generation >= lowering.generation && acked >= epoch);
    });
    if (!heard) return lowering.previous;
    this.lowering = undefined;
    return this.limit;
  }

  apiUp(): boolean {
    return this.now >= this.apiDownUntil;
  }

  /** Advances one tick: elections, operators, sidecars, clients. */
  tick(): void {
    this.now += this.settings.tickMs;
    const now = this.now;
    const apiUp = this.apiUp();
    if (apiUp) this.store.collect(this.rng, now);
    for (const [operator, at] of this.resumeAt) {
      if (now >= at) {
        operator.paused = false;
        this.resumeAt.delete(operator);
        // It wakes in the middle of a reconcile, with the cache and beliefs it had.
        if (apiUp && operator.leadingSince !== undefined) operator.reconcile(now);
      }
    }
    for (const operator of this.operators) {
      if (operator.paused || !apiUp) continue;
      this.#elect(operator, now);
      operator.refresh(this.rng, now);
      if (operator.leadingSince !== undefined) operator.reconcile(now);
    }
    this.#checkModel(now);
    for (const [pod, sidecar] of this.sidecars) {
      sidecar.reap(now);
      sidecar.sync(now, this.rng, apiUp);
      if (this.sidecars.get(pod) !== sidecar) continue;
      this.#drive(pod, sidecar, now);
    }
    for (const zombie of this.zombies) {
      zombie.reap(now);
      if (zombie.partitioned(now)) {
        // Its clients carry on; it admits what its grant and fence still allow.
        this.#drive(zombie.pod, zombie, now, zombie.streams.size + 1);
      } else {
        // The node is back: its kubelet kills what should not run any more.
        zombie.die(now);
        this.zombies.delete(zombie);
      }
    }
  }

  /** Every leader's model of the new-session limit against the provider's limit now. */
  #checkModel(now: number): void {
    const sessions = this.upstream.sessions;
    if (!sessions) return;
    const provider = sessions.limit(now);
    for (const operator of this.operators) {
      const model = operator.memory.get(budgetKey)?.sessions;
      if (operator.leadingSince === undefined || operator.paused || !model) continue;
      if (model.perMinute > provider) {
        this.upstream.modelAhead.push(`t=${now}: modelled ${model.perMinute}, provider's limit ${provider}`);
      }
      this.sessionTrace?.push({ at: now, model: model.perMinute, ceiling: model.ceiling, provider });
    }
  }

  /** With `traceSessions`, the model and the provider's limit at every tick, for the benchmark's curve. */
  sessionTrace: { at: number; model: number; ceiling: number; provider: number }[] | undefined;

  #elect(operator: SimOperator, now: number): void {
    const record = this.leaseHolder;
    if (record?.id === operator.id) {
      record.observedAt = now;
      operator.lastRenew = now;
      return;
    }
    // Deposed: someone else holds the lease. It learns it when it tries to renew.
    if (operator.leadingSince !== undefined) operator.forget();
    if (!record || now - record.observedAt > this.settings.leaseDurationMs) {
      this.leaseHolder = { id: operator.id, observedAt: now };
      operator.forget();
      operator.leadingSince = now;
      operator.lastRenew = now;
    }
  }

  /** Clients: open streams up to the pod's demand; streams end, now and then uncleanly. */
  #drive(pod: string, sidecar: SimSidecar, now: number, demand?: number): void {
    const churn = this.settings.churn ?? true;
    const hangUp = this.settings.hangUpChance ?? 0.025;
    for (const id of [...sidecar.streams.keys()]) {
      const r = churn ? this.rng() : 1;
      if (r < hangUp * 0.8) sidecar.end(id, now, true);
      else if (r < hangUp) sidecar.end(id, now, false);
    }
    // Clients of draining and deselected pods keep trying: only the grant stops them.
    const want = demand ?? this.demand.get(pod) ?? 0;
    let tries = Math.max(0, want - sidecar.streams.size);
    while (tries-- > 0) if (!sidecar.tryAdmit(now)) this.rejections += 1;
  }

  /** Every client hangs up. */
  endAllStreams(): void {
    for (const sidecar of [...this.sidecars.values(), ...this.zombies])
      for (const id of [...sidecar.streams.keys()]) sidecar.end(id, this.now, true);
  }

  /** Streams open across the fleet, for the utilization check. */
  openStreams(): number {
    let total = 0;
    for (const sidecar of this.sidecars.values()) total += sidecar.streams.size;
    return total;
  }
}
