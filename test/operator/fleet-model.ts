/**
 * A whole fleet in one process, stepped on a simulated clock: an API store with
 * optimistic concurrency, operator replicas (the real LeaseBook and allocate(), a cache
 * that lags, leader election, pauses), sidecars (the real BudgetGate, fences, acks that
 * are late or lost, crashes between putting a grant in force and acknowledging it) and an
 * upstream that counts streams the way the provider does, release delay included. The
 * property tests drive it with random events and check the invariants on the upstream's
 * own count, not on anyone's bookkeeping.
 */

import { type Allocation, allocate, type Grant } from '../../operator/allocate.js';
import { type Candidate, LeaseBook, type ObservedLease } from '../../operator/lease-book.js';
import { BudgetGate } from '../../sidecar/admission.js';

export interface FleetSettings {
  limit: number;
  minPerPod: number;
  sessionsPerMinute?: number;
  leaseDurationMs: number;
  releaseDelayMs: number;
  tickMs: number;
  strategy?: 'Demand' | 'Equal';
  /** Streams end now and then (cleanly or not); off for steady-state checks. */
  churn?: boolean;
  /** Status writes get lost and sidecars crash between putting a grant in force and acknowledging it. */
  chaos?: boolean;
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

interface StoredLease {
  name: string;
  pod: string;
  spec: Grant;
  epoch: number;
  status?: ObservedLease['status'] & { staleSlots?: number };
  version: number;
  deleting: boolean;
}

interface StoredPod {
  name: string;
  phase: 'running' | 'terminating';
  selected: boolean;
}

class Upstream {
  open = new Set<string>();
  held: number[] = [];
  starts: number[] = [];
  peak = 0;
  violations: string[] = [];

  count(now: number): number {
    this.held = this.held.filter((until) => until > now);
    return this.open.size + this.held.length;
  }

  start(id: string, now: number, limit: number, sessionsPerMinute: number | undefined): void {
    this.open.add(id);
    this.starts.push(now);
    const count = this.count(now);
    this.peak = Math.max(this.peak, count);
    if (count > limit) this.violations.push(`t=${now}: ${count} streams open upstream, limit ${limit}`);
    if (sessionsPerMinute !== undefined) {
      this.starts = this.starts.filter((t) => t > now - 60_000);
      if (this.starts.length > sessionsPerMinute)
        this.violations.push(`t=${now}: ${this.starts.length} starts in 60 s, budget ${sessionsPerMinute}`);
    }
  }

  end(id: string, now: number, clean: boolean, releaseDelayMs: number): void {
    if (!this.open.delete(id)) return;
    if (!clean) this.held.push(now + releaseDelayMs);
  }
}

class SimSidecar {
  gate: BudgetGate;
  streams = new Set<string>();
  appliedEpoch = -1;
  lastWriteSentAt: number | undefined;
  lastHeartbeat = Number.NEGATIVE_INFINITY;
  rejectedThisRound = 0;
  demandPeak: { at: number; value: number }[] = [];
  queued = 0;

  constructor(
    readonly pod: string,
    readonly fleet: Fleet,
    now: number,
  ) {
    this.gate = new BudgetGate(
      { name: 'sim', queueTimeoutMs: 0, maxQueueLength: 0, releaseDelayMs: fleet.settings.releaseDelayMs },
      { concurrency: 0, ...(fleet.settings.sessionsPerMinute !== undefined && { newSessionsPerMinute: 0, burst: 0 }) },
      now,
    );
    // A restart forgets nothing: whatever the last run may have had open is held.
    const lease = fleet.leaseOf(pod);
    if (lease) {
      const held = Math.max(lease.status?.inUse ?? 0, lease.status?.grant?.concurrency ?? 0, lease.spec.concurrency);
      this.gate.holdStale(held, now);
    }
  }

  fenced(now: number): boolean {
    return this.lastWriteSentAt === undefined || now - this.lastWriteSentAt > this.fleet.fenceAfterMs;
  }

  tryAdmit(now: number): boolean {
    if (this.fenced(now) || this.gate.blocker(now) !== undefined) {
      this.rejectedThisRound += 1;
      return false;
    }
    this.gate.take(now);
    const id = `${this.pod}#${this.fleet.nextStreamId++}`;
    this.streams.add(id);
    this.fleet.upstream.start(id, now, this.fleet.limitInForce(), this.fleet.settings.sessionsPerMinute);
    return true;
  }

  end(id: string, now: number, clean: boolean): void {
    if (!this.streams.delete(id)) return;
    this.gate.release(now, clean);
    this.fleet.upstream.end(id, now, clean, this.fleet.settings.releaseDelayMs);
  }

  /** Peak over 10 s of what was in use plus what was turned away since the last sample. */
  demand(now: number): number {
    const value = this.gate.inUse(now) + this.rejectedThisRound;
    this.rejectedThisRound = 0;
    this.demandPeak.push({ at: now, value });
    this.demandPeak = this.demandPeak.filter((p) => p.at > now - 10_000);
    return Math.max(...this.demandPeak.map((p) => p.value));
  }

  /** One round of lease sync: see the spec, put it in force, acknowledge; or heartbeat. */
  sync(now: number, rng: () => number, apiUp: boolean): void {
    if (!apiUp) return;
    const lease = this.fleet.leaseOf(this.pod);
    if (!lease) return;
    const fresh = lease.epoch > this.appliedEpoch;
    if (fresh && rng() < 0.8) {
      this.gate.updateGrant(lease.spec, now);
      this.appliedEpoch = lease.epoch;
      // The process may die between putting a grant in force and acknowledging it.
      if (this.fleet.chaos && rng() < 0.05) {
        this.fleet.crashSidecar(this.pod, now);
        return;
      }
      this.#writeStatus(lease, now, rng);
      return;
    }
    if (now - this.lastHeartbeat >= this.fleet.settings.leaseDurationMs / 3) this.#writeStatus(lease, now, rng);
  }

  #writeStatus(lease: StoredLease, now: number, rng: () => number): void {
    if (this.fleet.chaos && rng() < 0.05) return; // lost on the way
    this.lastWriteSentAt = now;
    this.lastHeartbeat = now;
    lease.status = {
      observedEpoch: this.appliedEpoch,
      grant: { ...this.gate.grant },
      inUse: this.gate.inUse(now),
      demand: this.demand(now),
      heartbeatTime: String(now),
    };
    lease.version += 1;
  }
}

class SimOperator {
  book: LeaseBook;
  cache = new Map<string, StoredLease>();
  podCache = new Map<string, StoredPod>();
  leadingSince: number | undefined;
  lastRenew = Number.NEGATIVE_INFINITY;
  paused = false;
  writes = 0;
  lastAllocation: Allocation | undefined;

  #generation = 0;

  constructor(
    readonly base: string,
    readonly fleet: Fleet,
  ) {
    this.book = fleet.newBook();
  }

  /** A process's identity in the election: a restarted process is a new candidate. */
  get id(): string {
    return `${this.base}-${this.#generation}`;
  }

  /** The process restarts: memory, cache and leadership are gone. */
  crash(): void {
    this.#generation += 1;
    this.restart();
  }

  restart(): void {
    this.book = this.fleet.newBook();
    this.cache.clear();
    this.podCache.clear();
    this.leadingSince = undefined;
    this.lastRenew = Number.NEGATIVE_INFINITY;
  }

  /** The informer: each object's copy catches up with some delay. */
  refresh(rng: () => number): void {
    for (const [name, lease] of this.fleet.leases) {
      const cached = this.cache.get(name);
      if (!cached || cached.version !== lease.version) {
        if (rng() < 0.7) this.cache.set(name, structuredClone(lease));
      }
    }
    for (const name of this.cache.keys()) if (!this.fleet.leases.has(name) && rng() < 0.7) this.cache.delete(name);
    for (const [name, pod] of this.fleet.pods) if (rng() < 0.7) this.podCache.set(name, { ...pod });
    for (const name of this.podCache.keys()) if (!this.fleet.pods.has(name) && rng() < 0.7) this.podCache.delete(name);
  }

  reconcile(now: number): void {
    const settings = this.fleet.settings;
    const candidates: Candidate[] = [];
    const leaseByPod = new Map<string, StoredLease>();
    for (const lease of this.cache.values()) leaseByPod.set(lease.pod, lease);
    for (const pod of this.podCache.values()) {
      const lease = leaseByPod.get(pod.name);
      if (!pod.selected && !lease) continue;
      const phase = pod.phase === 'running' && pod.selected ? 'active' : 'draining';
      candidates.push({ name: pod.name, phase, ...(lease && { lease: observed(lease) }) });
    }
    for (const lease of this.cache.values()) {
      if (!this.podCache.has(lease.pod)) candidates.push({ name: lease.pod, phase: 'gone', lease: observed(lease) });
    }
    const members = this.book.members(candidates, now);
    const leader = this.leadingSince !== undefined;
    const mayRaise =
      leader &&
      now - (this.leadingSince as number) >= settings.leaseDurationMs &&
      now - this.lastRenew <= this.fleet.renewDeadlineMs;
    const allocation = allocate(
      {
        limit: this.fleet.limit,
        minPerPod: settings.minPerPod,
        strategy: settings.strategy ?? 'Demand',
        ...(settings.sessionsPerMinute !== undefined && { sessionsPerMinute: settings.sessionsPerMinute }),
      },
      members,
      { mayRaise, mayRaiseSessions: mayRaise && now - (this.leadingSince as number) >= 60_000 },
    );
    this.lastAllocation = allocation;
    for (const [name, grant] of allocation.writes) {
      const member = members.find((m) => m.name === name);
      if (!member) continue;
      const stored = this.fleet.leases.get(name);
      // Optimistic concurrency: the write tests the epoch it was computed from.
      if (!member.hasLease) {
        if (stored) continue;
        this.fleet.leases.set(name, { name, pod: name, spec: grant, epoch: 1, version: 1, deleting: false });
        this.book.wrote(name, 1, grant, now);
      } else {
        if (!stored || stored.epoch !== member.epoch) {
          this.book.writeFailed(name);
          continue;
        }
        stored.spec = grant;
        stored.epoch += 1;
        stored.version += 1;
        this.book.wrote(name, stored.epoch, grant, now);
      }
      this.writes += 1;
    }
    for (const name of this.book.releasable(now)) {
      const stored = this.fleet.leases.get(name);
      if (stored && !this.fleet.pods.has(stored.pod)) this.fleet.leases.delete(name);
    }
  }
}

function observed(lease: StoredLease): ObservedLease {
  return {
    name: lease.pod,
    spec: lease.spec,
    epoch: lease.epoch,
    ...(lease.status && { status: lease.status }),
    statusFingerprint: JSON.stringify(lease.status ?? null),
  };
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
  | { kind: 'setDemand'; pod: number; streams: number }
  | { kind: 'lowerLimit'; to: number };

export class Fleet {
  readonly settings: FleetSettings;
  limit: number;
  readonly upstream = new Upstream();
  readonly leases = new Map<string, StoredLease>();
  readonly pods = new Map<string, StoredPod>();
  readonly sidecars = new Map<string, SimSidecar>();
  readonly demand = new Map<string, number>();
  readonly operators: SimOperator[];
  readonly rng: () => number;
  readonly fenceAfterMs: number;
  readonly staleAfterMs: number;
  readonly renewDeadlineMs: number;
  leaseHolder: { id: string; observedAt: number } | undefined;
  now = 0;
  nextStreamId = 0;
  podCounter = 0;
  apiDownUntil = -1;
  rejections = 0;
  chaos: boolean;
  /** After a lowering, the old limit stays the measure until every lease acknowledged a later grant. */
  lowering: { previous: number; epochs: Map<string, number> } | undefined;

  constructor(settings: FleetSettings, seed: number, replicas = 2) {
    this.settings = settings;
    this.limit = settings.limit;
    this.chaos = settings.chaos ?? true;
    this.rng = random(seed);
    const margin = Math.min(2000, Math.max(250, settings.leaseDurationMs / 6));
    this.fenceAfterMs = settings.leaseDurationMs - margin;
    this.staleAfterMs = settings.leaseDurationMs + margin;
    this.renewDeadlineMs = (settings.leaseDurationMs * 2) / 3;
    this.operators = Array.from({ length: replicas }, (_, i) => new SimOperator(`op-${i}`, this));
  }

  newBook(): LeaseBook {
    return new LeaseBook({
      staleAfterMs: this.staleAfterMs,
      releaseDelayMs: this.settings.releaseDelayMs,
      staleGoneHoldMs: 4 * this.settings.leaseDurationMs,
      demandHalfLifeMs: 2000,
    });
  }

  leaseOf(pod: string): StoredLease | undefined {
    return this.leases.get(pod);
  }

  podName(index: number): string | undefined {
    const names = [...this.pods.keys()];
    return names.length === 0 ? undefined : names[index % names.length];
  }

  addPod(streams = 0): string {
    const name = `pod-${this.podCounter++}`;
    this.pods.set(name, { name, phase: 'running', selected: true });
    this.sidecars.set(name, new SimSidecar(name, this, this.now));
    this.demand.set(name, streams);
    return name;
  }

  crashSidecar(pod: string, now: number): void {
    const sidecar = this.sidecars.get(pod);
    if (!sidecar) return;
    for (const id of [...sidecar.streams]) this.upstream.end(id, now, false, this.settings.releaseDelayMs);
    this.sidecars.set(pod, new SimSidecar(pod, this, now));
  }

  apply(event: FleetEvent): void {
    const now = this.now;
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
        const pod = this.pods.get(this.podName(event.pod) ?? '');
        if (pod) pod.phase = 'terminating';
        return;
      }
      case 'deselectPod': {
        const pod = this.pods.get(this.podName(event.pod) ?? '');
        if (pod) pod.selected = false;
        return;
      }
      case 'deletePod':
      case 'killPod': {
        const name = this.podName(event.pod);
        if (!name) return;
        const sidecar = this.sidecars.get(name);
        for (const id of [...(sidecar?.streams ?? [])]) {
          this.upstream.end(id, now, event.kind === 'deletePod', this.settings.releaseDelayMs);
        }
        this.sidecars.delete(name);
        this.pods.delete(name);
        this.demand.delete(name);
        return;
      }
      case 'restartSidecar': {
        const name = this.podName(event.pod);
        if (name) this.crashSidecar(name, now);
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
        this.lowering = {
          previous: Math.max(this.limit, this.lowering?.previous ?? 0),
          epochs: new Map([...this.leases].map(([name, lease]) => [name, lease.epoch])),
        };
        this.limit = to;
        return;
      }
    }
  }

  readonly resumeAt = new Map<SimOperator, number>();

  /** The limit the fleet can be held to now: a lowered one once every pod has heard of it. */
  limitInForce(): number {
    if (!this.lowering) return this.limit;
    const heard = [...this.lowering.epochs].every(([name, epoch]) => {
      const lease = this.leases.get(name);
      return !lease || (lease.status?.observedEpoch ?? -1) > epoch;
    });
    if (!heard) return this.lowering.previous;
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
      operator.refresh(this.rng);
      if (operator.leadingSince !== undefined) operator.reconcile(now);
    }
    for (const [pod, sidecar] of this.sidecars) {
      sidecar.sync(now, this.rng, apiUp);
      const current = this.sidecars.get(pod);
      if (current !== sidecar) continue;
      this.#drive(pod, sidecar, now);
    }
  }

  #elect(operator: SimOperator, now: number): void {
    const record = this.leaseHolder;
    if (record?.id === operator.id) {
      record.observedAt = now;
      operator.lastRenew = now;
      return;
    }
    // Deposed: someone else holds the lease. It learns it when it tries to renew.
    if (operator.leadingSince !== undefined) operator.leadingSince = undefined;
    if (!record || now - record.observedAt > this.settings.leaseDurationMs) {
      this.leaseHolder = { id: operator.id, observedAt: now };
      operator.restart();
      operator.leadingSince = now;
      operator.lastRenew = now;
    }
  }

  /** Clients: open streams up to the pod's demand; streams end, now and then uncleanly. */
  #drive(pod: string, sidecar: SimSidecar, now: number): void {
    const churn = this.settings.churn ?? true;
    for (const id of [...sidecar.streams]) {
      const r = churn ? this.rng() : 1;
      if (r < 0.02) sidecar.end(id, now, true);
      else if (r < 0.025) sidecar.end(id, now, false);
    }
    // Clients of draining and deselected pods keep trying: only the grant stops them.
    const want = this.demand.get(pod) ?? 0;
    let tries = Math.max(0, want - sidecar.streams.size);
    while (tries-- > 0) if (!sidecar.tryAdmit(now)) this.rejections += 1;
  }

  /** Every client hangs up. */
  endAllStreams(): void {
    for (const sidecar of this.sidecars.values())
      for (const id of [...sidecar.streams]) sidecar.end(id, this.now, true);
  }

  /** Streams open per pod, for the utilization check. */
  openStreams(): number {
    let total = 0;
    for (const sidecar of this.sidecars.values()) total += sidecar.streams.size;
    return total;
  }
}
