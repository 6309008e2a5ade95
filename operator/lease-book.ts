/**
 * What the operator remembers about one budget's leases between reconciles: when it last
 * saw each lease's status change (staleness is measured on its own monotonic clock), when
 * pods went, which grants it wrote that its cache does not show yet, smoothed demand, and
 * how many of each pod's starts are still inside its new-session window. Pure: the caller
 * passes the time.
 * Everything here may be forgotten (a restart or failover starts a new book); the rules
 * err on the safe side when it is.
 */
import { nextWindowExit, startsMade, startsStillInWindow, startsSurelyCounted } from '../crds/api/index.js';
import type { Grant, Member, MemberPhase } from './allocate.js';

/** A lease as read from the cache, reduced to what the allocation needs. */
export interface ObservedLease {
  name: string;
  spec: Grant;
  epoch: number;
  status?: {
    observedEpoch?: number;
    grant?: Partial<Grant>;
    inUse?: number;
    demand?: number;
    /** New streams wanted per minute, and the starts inside the pod's window by the second they leave it. */
    sessionDemand?: number;
    sessionWindow?: number[];
    /** The part of sessionWindow held for an earlier run of the sidecar. */
    sessionWindowInherited?: number[];
    heartbeatTime?: string;
  };
  /** Anything in status, so that any change counts as a sign of life. */
  statusFingerprint: string;
  /** When the lease's deletion began (ms since the epoch): the garbage collector's, soon after its pod went. */
  deletingSince?: number;
}

export interface BookTimings {
  /** A lease whose status has not changed for this long is stale. */
  staleAfterMs: number;
  /** How long slots of a pod that went stay counted: the upstream's release delay. */
  releaseDelayMs: number;
  /** How much longer for a pod that was stale when it went: it may still be streaming. */
  staleGoneHoldMs: number;
  /** Demand falls by half in this time when it drops; it rises at once. */
  demandHalfLifeMs: number;
  /** With a new-session budget, a vanished pod's lease is kept at least this long: its starts may still count. */
  sessionWindowMs: number;
}

/** A pod as the budget sees it now, or `gone` for a lease whose pod has vanished. */
export interface Candidate {
  name: string;
  phase: MemberPhase;
  lease?: ObservedLease;
}

interface LeaseRecord {
  fingerprint: string;
  changedAt: number;
  /** A status change was observed by this book (not only the state it found at first sight). */
  sawChange: boolean;
  smoothedDemand: number;
  demandAt: number;
  goneAt?: number;
  goneStale?: boolean;
  pending?: { epoch: number; grant: Grant };
  smoothedSessionDemand: number;
  /** The last reported new-session window, read as if written when it was first seen. */
  sessionWindow?: number[];
  /** The starts of it the sidecar made itself (not held for an earlier run). */
  sessionWindowMade?: number[];
}

export class LeaseBook {
  readonly timings: BookTimings;
  readonly #records = new Map<string, LeaseRecord>();

  constructor(timings: BookTimings) {
    this.timings = timings;
  }

  /**
   * Turns what the cache shows now into the allocation's members, updating what the book
   * remembers. `wallNow` (ms since the epoch) is read only to hold a vanished pod longer.
   */
  members(candidates: readonly Candidate[], now: number, wallNow = Date.now()): Member[] {
    const seen = new Set<string>();
    const members: Member[] = [];
    for (const candidate of candidates) {
      seen.add(candidate.name);
      members.push(this.#member(candidate, now, wallNow));
    }
    for (const name of this.#records.keys()) if (!seen.has(name)) this.#records.delete(name);
    return members;
  }

  /** Leases of pods that went whose slots are now surely free: their finalizer may go. */
  releasable(now: number): string[] {
    const names: string[] = [];
    for (const [name, record] of this.#records) {
      if (record.goneAt === undefined) continue;
      if (now - record.goneAt >= this.#goneHold(record)) names.push(name);
    }
    return names;
  }

  /**
   * How long a vanished pod's lease is kept: the slot hold (longer when it went while
   * stale), and with a new-session budget at least a whole window, since its last starts
   * still count upstream.
   */
  #goneHold(record: LeaseRecord): number {
    const slots = this.timings.releaseDelayMs + (record.goneStale ? this.timings.staleGoneHoldMs : 0);
    return Math.max(slots, this.timings.sessionWindowMs);
  }

  /** When the next reported start leaves a pod's window (ms from now), so that capacity given up is handed on then. */
  nextWindowExit(now: number): number | undefined {
    let next: number | undefined;
    for (const record of this.#records.values()) {
      const exit = nextWindowExit(record.sessionWindow, now - record.changedAt);
      if (exit === undefined) continue;
      const at = record.changedAt + exit - now;
      next = next === undefined ? at : Math.min(next, at);
    }
    return next;
  }

  /** Leases of pods that went while stale, held for the stale-gone hold: name and when the hold ends. */
  staleGoneHolds(): { name: string; releaseAt: number }[] {
    const holds: { name: string; releaseAt: number }[] = [];
    for (const [name, record] of this.#records) {
      if (record.goneAt === undefined || !record.goneStale) continue;
      holds.push({ name, releaseAt: record.goneAt + this.#goneHold(record) });
    }
    return holds;
  }

  /** When the next hold ends, so the caller can come back then. */
  nextRelease(now: number): number | undefined {
    let next: number | undefined;
    for (const record of this.#records.values()) {
      if (record.goneAt === undefined) continue;
      const at = record.goneAt + this.#goneHold(record);
      next = next === undefined ? at : Math.min(next, at);
    }
    return next === undefined ? undefined : Math.max(0, next - now);
  }

  /** A grant the operator wrote: it counts until the cache shows that epoch. */
  wrote(name: string, epoch: number, grant: Grant, now: number): void {
    const record = this.#record(name, now);
    record.pending = { epoch, grant };
  }

  /** Forgets a pending write that failed (a conflict: the cache will bring the truth). */
  writeFailed(name: string): void {
    const record = this.#records.get(name);
    if (record) record.pending = undefined;
  }

  #record(name: string, now: number): LeaseRecord {
    let record = this.#records.get(name);
    if (!record) {
      // First sight (or a new book after a restart) counts as a sign of life: a lease
      // becomes stale only a full lease duration after this operator started watching it.
      record = {
        fingerprint: '',
        changedAt: now,
        sawChange: false,
        smoothedDemand: 0,
        demandAt: now,
        smoothedSessionDemand: 0,
      };
      this.#records.set(name, record);
    }
    return record;
  }

  #member(candidate: Candidate, now: number, wallNow: number): Member {
    const known = this.#records.has(candidate.name);
    const record = this.#record(candidate.name, now);
    const lease = candidate.lease;
    if (lease && lease.statusFingerprint !== record.fingerprint) {
      if (known) record.sawChange = true;
      record.fingerprint = lease.statusFingerprint;
      record.changedAt = now;
      record.sessionWindow = lease.status?.sessionWindow;
      record.sessionWindowMade = startsMade(lease.status?.sessionWindow, lease.status?.sessionWindowInherited);
    }
    const stale = lease !== undefined && now - record.changedAt > this.timings.staleAfterMs;
    if (candidate.phase === 'gone') {
      if (record.goneAt === undefined) {
        record.goneAt = now;
        record.goneStale =
          lease !== undefined &&
          goneWhileStale(lease, stale, record.sawChange, now - record.changedAt, wallNow, this.timings.staleAfterMs);
      }
    } else {
      record.goneAt = undefined;
    }

    let spec = lease?.spec ?? { concurrency: 0 };
    let epoch = lease?.epoch ?? 0;
    if (record.pending) {
      if (lease && lease.epoch >= record.pending.epoch) record.pending = undefined;
      else ({ grant: spec, epoch } = record.pending);
    }

    const status = lease?.status;
    const ack =
      status?.observedEpoch !== undefined
        ? {
            epoch: status.observedEpoch,
            grant: {
              concurrency: status.grant?.concurrency ?? 0,
              ...(status.grant?.newSessionsPerMinute !== undefined && {
                newSessionsPerMinute: status.grant.newSessionsPerMinute,
              }),
            },
          }
        : undefined;

    // Starts the pod made are inside its window until they leave it, whatever its grant
    // says now: capacity it gave up is free only as they leave.
    const sessionsHeld = startsStillInWindow(record.sessionWindow, now - record.changedAt);
    // What the provider surely counts: only starts the sidecar made itself, and only from a
    // report this book saw arrive. One found at first sight (a new leader, a restart) may
    // be old, and read as new it would place its starts later than they were made.
    const made = record.sawChange ? record.sessionWindowMade : undefined;
    const sessionsCounted = startsSurelyCounted(made, now - record.changedAt);

    const reported = Math.max(status?.demand ?? 0, status?.inUse ?? 0);
    const decay = 0.5 ** ((now - record.demandAt) / this.timings.demandHalfLifeMs);
    record.smoothedDemand = Math.max(reported, record.smoothedDemand * decay);
    record.smoothedSessionDemand = Math.max(status?.sessionDemand ?? 0, record.smoothedSessionDemand * decay);
    record.demandAt = now;

    return {
      name: candidate.name,
      phase: candidate.phase,
      hasLease: lease !== undefined || record.pending !== undefined,
      spec,
      epoch,
      ...(ack && { ack }),
      inUse: status?.inUse ?? 0,
      demand: Math.floor(record.smoothedDemand + 0.5),
      stale,
      sessionsHeld,
      sessionsCounted,
      sessionDemand: Math.floor(record.smoothedSessionDemand + 0.5),
    };
  }
}

/**
 * Whether a pod that vanished may still be streaming somewhere: its lease was stale when
 * it went. A lease with no status never had a sidecar that admitted (a sidecar admits
 * nothing before its first status write), so nothing of it can be streaming. A book that
 * has not watched the lease for a stale-after yet (a new leader, a restart) cannot have
 * observed the silence itself: it compares the sidecar's last heartbeat with when the
 * lease's deletion began (the garbage collector deletes it as the pod goes), or with now
 * when that has not happened yet. Used only to hold longer, never to free anything sooner.
 */
function goneWhileStale(
  lease: ObservedLease,
  stale: boolean,
  sawChange: boolean,
  watchedMs: number,
  wallNow: number,
  staleAfterMs: number,
): boolean {
  if (!lease.status) return false;
  if (stale) return true;
  if (sawChange || watchedMs > staleAfterMs) return false;
  const heartbeat = Date.parse(lease.status.heartbeatTime ?? '');
  return Number.isNaN(heartbeat) || (lease.deletingSince ?? wallNow) - heartbeat > staleAfterMs;
}
