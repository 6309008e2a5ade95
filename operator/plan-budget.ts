/**
 * Every decision of one reconcile of a StreamBudget, as a pure function of what the
 * caches show and what the operator remembers: which pods share the budget and where
 * each stands, which grants to write, which leases to let go, the status, the events and
 * when to come back. The reconciler performs the plan's I/O and reports each write's
 * outcome back; the fleet model of the property tests runs this same function.
 */
import type { V1Pod } from '@kubernetes/client-node';
import {
  budgetLabel,
  labelValue,
  leaseName,
  leaseTimings,
  podNameLabel,
  podUidLabel,
  type StreamBudget,
  type StreamBudgetStatus,
  type StreamLease,
  selects,
  sessionWindowMs,
  slotHoldMs,
  slotsHeldFinalizer,
  streamLeaseResource,
} from '../crds/api/index.js';
import { allocate, type Grant } from './allocate.js';
import { budgetStatus, sameStatus } from './budget-status.js';
import { type Candidate, LeaseBook, type ObservedLease } from './lease-book.js';
import { SessionModel } from './session-model.js';

/** What leadership allows now. */
export interface Leadership {
  /** Leading, renewed within the renew deadline, and for at least `graceMs`. */
  mayRaise(graceMs: number): boolean;
}

export interface PlannerSettings {
  /** Extra hold of a pod that went while stale; undefined: the budget's maxStreamSeconds. */
  staleGoneHoldSeconds: number | undefined;
  demandHalfLifeSeconds: number;
  peakWindowSeconds: number;
  /** Usage figures in a budget's status are written at most this often; conditions at once. */
  statusIntervalSeconds: number;
}

/** What one reconcile of `key` sees: the caches' objects, and leadership. */
export interface BudgetState {
  /** namespace/name */
  key: string;
  /** The budget, or undefined once it is gone. */
  budget: StreamBudget | undefined;
  /** The budget's leases. */
  leases: readonly StreamLease[];
  /** The pods of the budget's namespace. */
  pods: readonly V1Pod[];
  /** Every budget (others naming the same project are reported). */
  budgets: readonly StreamBudget[];
  leadership: Leadership;
  /** The wall clock, for condition transition times only. */
  wallClock: Date;
}

/** What the operator remembers of one budget between reconciles; forgotten on a restart or a lost election. */
export interface BudgetMemory {
  book: LeaseBook;
  sessions?: SessionModel;
  sessionsSpec?: string;
  peaks: { at: number; value: number }[];
  rejections: { at: number; count: number }[];
  lastRejectedTotals: Map<string, number>;
  stale: Set<string>;
  /** Leases of vanished pods whose long hold an event has announced. */
  announcedHolds: Set<string>;
  overCommitted: boolean;
  rejecting: boolean;
  statusWrittenAt: number;
}

/** The operator's memory of every budget. */
export type PlannerMemory = Map<string, BudgetMemory>;

/** A grant to write: a lease to create, or a lease's grant to replace if it is still at `epoch`. */
export type GrantWrite =
  | { kind: 'create'; lease: string; grant: Grant; body: StreamLease }
  | { kind: 'grant'; lease: string; grant: Grant; target: StreamLease; epoch: number };

export interface PlannedEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

/** Figures for the operator's per-budget gauges. */
export interface BudgetGauges {
  limit: number;
  allocated: number;
  reserved: number;
  inUse: number;
  staleLeases: number;
}

export interface BudgetPlan {
  /** Put the slots-held finalizer on the budget before anything else. */
  addFinalizer: boolean;
  writes: GrantWrite[];
  /** Leases whose slots are surely free: their finalizer goes, then the object. */
  releases: StreamLease[];
  /** The status to write now, if any. */
  status: StreamBudgetStatus | undefined;
  events: PlannedEvent[];
  gauges: BudgetGauges | undefined;
  /** The budget is going and nothing holds it any more. */
  removeFinalizer: boolean;
  /** Nothing is left to remember of the budget (nor gauges to keep). */
  forget: boolean;
  requeueAfterMs?: number;
}

/** Decides one reconcile of `state.key`, updating what `memory` remembers of it. */
export function planBudget(
  memory: PlannerMemory,
  state: BudgetState,
  settings: PlannerSettings,
  now: number,
): BudgetPlan {
  const { key, budget, leases } = state;
  const plan: BudgetPlan = {
    addFinalizer: false,
    writes: [],
    releases: [],
    status: undefined,
    events: [],
    gauges: undefined,
    removeFinalizer: false,
    forget: false,
  };
  if (!budget) {
    // The budget is gone without us (its finalizer was removed by hand): let its leases go.
    plan.releases = [...leases];
    plan.forget = true;
    memory.delete(key);
    return plan;
  }
  const name = budget.metadata.name as string;
  const timings = leaseTimings(budget);
  const mem = memoryFor(memory, key, budget, settings, timings.staleAfterMs, now);
  const deleting = budget.metadata.deletionTimestamp !== undefined;
  plan.addFinalizer = !deleting && !budget.metadata.finalizers?.includes(slotsHeldFinalizer);

  // Who shares the budget, and where each stands.
  const podsByName = new Map(state.pods.map((p) => [p.metadata?.name as string, p]));
  const candidates: Candidate[] = [];
  const leaseByName = new Map<string, StreamLease>();
  const podOfCandidate = new Map<string, V1Pod>();
  for (const lease of leases) {
    const pod = podsByName.get(lease.spec.podName);
    const alive = pod !== undefined && pod.metadata?.uid === lease.spec.podUID && !terminal(pod);
    const phase = !alive
      ? 'gone'
      : deleting || pod.metadata?.deletionTimestamp || !selects(budget.spec.podSelector, pod.metadata?.labels ?? {})
        ? 'draining'
        : 'active';
    const leaseKey = lease.metadata.name as string;
    leaseByName.set(leaseKey, lease);
    if (pod && alive) podOfCandidate.set(leaseKey, pod);
    candidates.push({ name: leaseKey, phase, lease: observe(lease) });
  }
  if (!deleting) {
    for (const pod of state.pods) {
      const uid = pod.metadata?.uid;
      if (!uid || pod.metadata?.deletionTimestamp || terminal(pod)) continue;
      if (!selects(budget.spec.podSelector, pod.metadata?.labels ?? {})) continue;
      const leaseKey = leaseName(name, pod.metadata?.name as string, uid);
      if (leaseByName.has(leaseKey)) continue;
      podOfCandidate.set(leaseKey, pod);
      candidates.push({ name: leaseKey, phase: 'active' });
    }
  }

  const members = mem.book.members(candidates, now, state.wallClock.getTime());
  const statuses = leases.map((l) => l.status ?? {});
  // The provider's count of starts, bounded from the pods' reported windows (a vanished
  // pod's too, as its starts leave).
  const counted = members.reduce((sum, m) => sum + (m.sessionsCounted ?? 0), 0);
  const held = members.reduce((sum, m) => sum + (m.sessionsHeld ?? 0), 0);
  const sessionsPerMinute = mem.sessions?.observe({ least: counted, most: held }, now);
  const mayRaise = !deleting && state.leadership.mayRaise(timings.leaseDurationMs);
  const allocation = allocate(
    {
      limit: budget.spec.maxConcurrentStreams,
      minPerPod: budget.spec.allocation.minPerPod,
      strategy: budget.spec.allocation.strategy,
      ...(sessionsPerMinute !== undefined && { sessionsPerMinute }),
    },
    members,
    { mayRaise },
  );

  // The grants to write.
  let moved = 0;
  const memberByName = new Map(members.map((m) => [m.name, m]));
  for (const [leaseKey, grant] of allocation.writes) {
    const member = memberByName.get(leaseKey);
    if (!member) continue;
    const lease = leaseByName.get(leaseKey);
    moved += Math.abs(grant.concurrency - (member.hasLease ? member.spec.concurrency : 0));
    if (lease) {
      plan.writes.push({ kind: 'grant', lease: leaseKey, grant, target: lease, epoch: member.epoch });
      continue;
    }
    const pod = podOfCandidate.get(leaseKey);
    if (pod) plan.writes.push({ kind: 'create', lease: leaseKey, grant, body: newLease(budget, leaseKey, pod, grant) });
  }
  if (moved >= Math.max(2, Math.ceil(budget.spec.maxConcurrentStreams * 0.2))) {
    plan.events.push({
      type: 'Normal',
      reason: 'GrantsMoved',
      message: `Moved ${moved} stream slots between pods to follow demand`,
    });
  }

  // The leases to let go: gone pods whose slots are surely free, and drained ones (grant 0
  // acknowledged, nothing in use, no start left in the pod's new-session window).
  const releasable = new Set(mem.book.releasable(now));
  const drained = (m: (typeof members)[number]) =>
    m.phase === 'draining' && m.ack?.epoch === m.epoch && m.spec.concurrency === 0 && m.inUse === 0;
  for (const m of members) {
    if (drained(m) && (m.sessionsHeld ?? 0) === 0) {
      releasable.add(m.name);
    }
  }
  for (const leaseKey of releasable) {
    const lease = leaseByName.get(leaseKey);
    if (lease) plan.releases.push(lease);
  }

  // Usage rolled up into the status.
  const inUse = members.filter((m) => m.phase !== 'gone').reduce((sum, m) => sum + m.inUse, 0);
  mem.peaks.push({ at: now, value: inUse });
  mem.peaks = mem.peaks.filter((p) => p.at > now - settings.peakWindowSeconds * 1000);
  for (const lease of leases) {
    const total = lease.status?.upstreamRejectedTotal ?? 0;
    const before = mem.lastRejectedTotals.get(lease.metadata.name as string);
    if (before !== undefined && total > before) mem.rejections.push({ at: now, count: total - before });
    mem.lastRejectedTotals.set(lease.metadata.name as string, total);
  }
  mem.rejections = mem.rejections.filter((r) => r.at > now - 60_000);
  const upstreamRejections = mem.rejections.reduce((sum, r) => sum + r.count, 0);
  const stale = members
    .filter((m) => m.stale && m.phase !== 'gone')
    .map((m) => leaseByName.get(m.name)?.spec.podName ?? '?');
  const active = members.filter((m) => m.phase === 'active');
  const status = budgetStatus(
    {
      generation: budget.metadata.generation ?? 0,
      pods: active.length,
      allocated: allocation.allocated,
      inUse,
      queued: statuses.reduce((sum, s) => sum + (s.queued ?? 0), 0),
      peakInUse: Math.max(0, ...mem.peaks.map((p) => p.value)),
      peakWindowSeconds: settings.peakWindowSeconds,
      ...(sessionsPerMinute !== undefined && { newSessionsPerMinute: sessionsPerMinute }),
      ...(mem.sessions?.spec.autoscale && { newSessionsCeilingPerMinute: mem.sessions.ceiling }),
      admittedTotal: statuses.reduce((sum, s) => sum + (s.admittedTotal ?? 0), 0),
      rejectedTotal: statuses.reduce((sum, s) => sum + (s.rejectedTotal ?? 0), 0),
      reapedTotal: statuses.reduce((sum, s) => sum + (s.reapedTotal ?? 0), 0),
      upstreamRejectedTotal: statuses.reduce((sum, s) => sum + (s.upstreamRejectedTotal ?? 0), 0),
      pendingAcks: active.filter((m) => !m.hasLease || m.ack?.epoch !== m.epoch).length,
      staleLeases: stale,
      overCommitted: allocation.overCommitted
        ? { reserved: allocation.reserved, limit: budget.spec.maxConcurrentStreams }
        : undefined,
      upstreamRejections,
      sharedWith: sharedWith(budget, state.budgets),
    },
    budget.status,
    state.wallClock,
  );
  // Conditions, pods and allocation go out at once; figures that move with every stream
  // (in use, counters) at most once per status interval, so that a busy budget does not
  // write its status — and send it to every watcher — many times a second.
  let statusDueInMs: number | undefined;
  if (!sameStatus(budget.status, status)) {
    const wait = settings.statusIntervalSeconds * 1000 - (now - mem.statusWrittenAt);
    if (wait <= 0 || !sameStatus(statusShape(budget.status), statusShape(status))) plan.status = status;
    else statusDueInMs = wait;
  }
  plan.gauges = {
    limit: budget.spec.maxConcurrentStreams,
    allocated: allocation.allocated,
    reserved: allocation.reserved,
    inUse,
    staleLeases: stale.length,
  };

  // Events on transitions only.
  for (const pod of stale) {
    if (!mem.stale.has(pod)) {
      plan.events.push({
        type: 'Warning',
        reason: 'LeaseStale',
        message: `Pod ${pod} has not reported for a lease duration; its grant stays reserved`,
      });
    }
  }
  mem.stale = new Set(stale);
  const holds = mem.book.staleGoneHolds();
  for (const hold of holds) {
    if (mem.announcedHolds.has(hold.name)) continue;
    const seconds = Math.ceil((hold.releaseAt - now) / 1000);
    plan.events.push({
      type: 'Warning',
      reason: 'VanishedPodHeld',
      message: `Pod ${leaseByName.get(hold.name)?.spec.podName ?? hold.name} vanished while its lease was stale and may still be streaming; its slots stay reserved for ${seconds} s (--stale-gone-hold-seconds)`,
    });
  }
  mem.announcedHolds = new Set(holds.map((h) => h.name));
  if (allocation.overCommitted && !mem.overCommitted) {
    plan.events.push({
      type: 'Warning',
      reason: 'OverCommitted',
      message: `${allocation.reserved} streams reserved against a limit of ${budget.spec.maxConcurrentStreams}; nothing new is admitted until streams end`,
    });
  }
  mem.overCommitted = allocation.overCommitted;
  if (upstreamRejections > 0 && !mem.rejecting) {
    plan.events.push({
      type: 'Warning',
      reason: 'UpstreamRejecting',
      message: `The upstream refused ${upstreamRejections} handshake(s)`,
    });
  }
  mem.rejecting = upstreamRejections > 0;

  if (deleting && leases.length === 0) {
    plan.removeFinalizer = true;
    plan.forget = true;
    memory.delete(key);
    return plan;
  }
  const nextRelease = mem.book.nextRelease(now);
  const periodic = Math.max(250, Math.floor(timings.leaseDurationMs / 3));
  // A pod waiting for new-session capacity gets it as others' starts leave their windows.
  const draining = members.some((m) => drained(m) && (m.sessionsHeld ?? 0) > 0);
  const nextExit = allocation.sessionsWaiting || draining ? mem.book.nextWindowExit(now) : undefined;
  plan.requeueAfterMs = Math.ceil(
    Math.min(periodic, nextRelease ?? periodic, statusDueInMs ?? periodic, nextExit ?? periodic),
  );
  return plan;
}

/** What the operator learnt from performing a grant write: it counts until the cache shows it, or not at all. */
export function recordWrite(memory: PlannerMemory, key: string, write: GrantWrite, ok: boolean, now: number): void {
  const book = memory.get(key)?.book;
  if (!book) return;
  if (ok) book.wrote(write.lease, write.kind === 'create' ? 1 : write.epoch + 1, write.grant, now);
  else book.writeFailed(write.lease);
}

/** The status of `key` was written at `now`: usage figures wait a status interval from here. */
export function recordStatusWritten(memory: PlannerMemory, key: string, now: number): void {
  const mem = memory.get(key);
  if (mem) mem.statusWrittenAt = now;
}

function memoryFor(
  memory: PlannerMemory,
  key: string,
  budget: StreamBudget,
  settings: PlannerSettings,
  staleAfterMs: number,
  now: number,
): BudgetMemory {
  const releaseDelayMs = slotHoldMs(budget);
  const staleGoneHoldMs = (settings.staleGoneHoldSeconds ?? budget.spec.reaping.maxStreamSeconds) * 1000;
  let mem = memory.get(key);
  if (!mem) {
    mem = {
      book: new LeaseBook({
        staleAfterMs,
        releaseDelayMs,
        staleGoneHoldMs,
        demandHalfLifeMs: settings.demandHalfLifeSeconds * 1000,
        sessionWindowMs: 0,
      }),
      peaks: [],
      rejections: [],
      lastRejectedTotals: new Map(),
      stale: new Set(),
      announcedHolds: new Set(),
      overCommitted: false,
      rejecting: false,
      statusWrittenAt: Number.NEGATIVE_INFINITY,
    };
    memory.set(key, mem);
  }
  Object.assign(mem.book.timings, {
    staleAfterMs,
    releaseDelayMs,
    staleGoneHoldMs,
    sessionWindowMs: budget.spec.newSessions ? sessionWindowMs : 0,
  });
  const sessionsSpec = JSON.stringify(budget.spec.newSessions ?? null);
  if (mem.sessionsSpec !== sessionsSpec) {
    mem.sessionsSpec = sessionsSpec;
    // The provider's limit did not change with the spec: resume the range this memory
    // had, or the one the last leader wrote into the status.
    const status = budget.status;
    const resume = mem.sessions
      ? { low: mem.sessions.perMinute, high: mem.sessions.ceiling }
      : status?.newSessionsPerMinute !== undefined
        ? { low: status.newSessionsPerMinute, high: status.newSessionsCeilingPerMinute ?? status.newSessionsPerMinute }
        : undefined;
    mem.sessions = budget.spec.newSessions ? new SessionModel(budget.spec.newSessions, now, resume) : undefined;
  }
  return mem;
}

/** A pod's first lease of a budget: owned by the pod, held by the finalizer until its slots are free. */
function newLease(budget: StreamBudget, name: string, pod: V1Pod, grant: Grant): StreamLease {
  const podName = pod.metadata?.name as string;
  const uid = pod.metadata?.uid as string;
  return {
    apiVersion: streamLeaseResource.apiVersion as StreamLease['apiVersion'],
    kind: 'StreamLease',
    metadata: {
      name,
      namespace: budget.metadata.namespace as string,
      labels: {
        [budgetLabel]: labelValue(budget.metadata.name as string),
        [podNameLabel]: labelValue(podName),
        [podUidLabel]: uid,
        'app.kubernetes.io/managed-by': 'sluice',
      },
      finalizers: [slotsHeldFinalizer],
      ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: podName, uid }],
    },
    spec: { budgetName: budget.metadata.name as string, podName, podUID: uid, grant, epoch: 1 },
  };
}

function sharedWith(budget: StreamBudget, budgets: readonly StreamBudget[]): string[] {
  return budgets
    .filter(
      (other) =>
        other.spec.projectId === budget.spec.projectId &&
        other.spec.provider === budget.spec.provider &&
        other.metadata.namespace !== budget.metadata.namespace,
    )
    .map((other) => `${other.metadata.namespace}/${other.metadata.name}`)
    .sort();
}

function observe(lease: StreamLease): ObservedLease {
  const status = lease.status;
  return {
    name: lease.metadata.name as string,
    spec: lease.spec.grant,
    epoch: lease.spec.epoch,
    ...(status && {
      status: {
        ...(status.observedEpoch !== undefined && { observedEpoch: status.observedEpoch }),
        ...(status.grant && { grant: status.grant }),
        // Slots held after unclean ends count as in use.
        inUse: status.inUse ?? 0,
        ...(status.demand !== undefined && { demand: status.demand }),
        ...(status.sessionDemand !== undefined && { sessionDemand: status.sessionDemand }),
        ...(status.sessionWindow !== undefined && { sessionWindow: status.sessionWindow }),
        ...(status.sessionWindowInherited !== undefined && { sessionWindowInherited: status.sessionWindowInherited }),
        ...(status.heartbeatTime !== undefined && { heartbeatTime: status.heartbeatTime }),
      },
    }),
    statusFingerprint: JSON.stringify(status ?? null),
    ...(lease.metadata.deletionTimestamp && { deletingSince: new Date(lease.metadata.deletionTimestamp).getTime() }),
  };
}

/** What of a status must go out at once: its conditions' verdicts, generation, pods and allocation. */
function statusShape(status: StreamBudget['status']): NonNullable<StreamBudget['status']> {
  return {
    observedGeneration: status?.observedGeneration,
    pods: status?.pods,
    allocated: status?.allocated,
    conditions: status?.conditions?.map(({ type, status: verdict, reason }) => ({
      type,
      status: verdict,
      reason,
      lastTransitionTime: '',
      message: '',
    })),
  };
}

function terminal(pod: V1Pod): boolean {
  return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
}
