/**
 * The lease protocol's shared rules: what the operator and the sidecar must agree on
 * about StreamLeases (names, labels, the finalizer, timings). Both import these; neither
 * keeps a copy.
 */
import { createHash } from 'node:crypto';
import type { StreamBudget, StreamLease, StreamLeaseSpecGrant } from './generated.js';

/** Holds a lease (and so the record of its slots) until its slots are surely free upstream. */
export const slotsHeldFinalizer = 'sluice.dev/slots-held';
/** Labels every lease carries, so a sidecar can watch only its own and the operator only a budget's. */
export const budgetLabel = 'sluice.dev/budget';
export const podUidLabel = 'sluice.dev/pod-uid';
export const podNameLabel = 'sluice.dev/pod';
/** The field manager the operator and the sidecar write as. */
export const operatorManager = 'sluice-operator';
export const sidecarManager = 'sluice-sidecar';

/**
 * The lease name for a pod and a budget. Derived from budget, pod name and pod UID, so a
 * pod recreated under the same name never inherits a lease; shortened with a hash when
 * it would pass the 253-character limit of a name.
 */
export function leaseName(budgetName: string, podName: string, podUID: string): string {
  const uid = podUID.replace(/[^a-z0-9]/g, '').slice(0, 8);
  const plain = `${budgetName}.${podName}.${uid}`;
  if (plain.length <= 253) return plain;
  const hash = createHash('sha256').update(`${budgetName}/${podName}/${podUID}`).digest('hex').slice(0, 16);
  return `${budgetName.slice(0, 100)}.${podName.slice(0, 100)}.${hash}`;
}

/** Label values are at most 63 characters; longer names are cut and hashed. */
export function labelValue(value: string): string {
  if (value.length <= 63) return value;
  const hash = createHash('sha256').update(value).digest('hex').slice(0, 10);
  return `${value.slice(0, 52)}-${hash}`.replace(/[^A-Za-z0-9]+-/, '-');
}

export interface LeaseTimings {
  leaseDurationMs: number;
  /** The sidecar fences this long after its last successful status write was sent. */
  fenceAfterMs: number;
  /** The operator calls a lease stale this long after it last observed a status change. */
  staleAfterMs: number;
  /** A sidecar's heartbeat when nothing changed. */
  heartbeatMs: number;
  /** The shortest gap between two heartbeats that carry a change (acks are never held back). */
  minHeartbeatGapMs: number;
  /** How long one status write may take before the sidecar gives up on it. */
  writeTimeoutMs: number;
}

/**
 * Timings of a budget's leases, in whole milliseconds (timers and request deadlines take
 * integers). The fence comes a margin before the lease duration, the stale verdict a
 * margin after it: since a write is observed only after it was sent, a sidecar always
 * fences before the operator could call it stale, even with clocks that run at slightly
 * different rates. Rounding keeps that order: the fence rounds down, the verdict up.
 */
export function leaseTimings(budget: Pick<StreamBudget, 'spec'>): LeaseTimings {
  const leaseDurationMs = budget.spec.allocation.leaseDurationSeconds * 1000;
  const margin = Math.min(2000, Math.max(250, leaseDurationMs / 6));
  const fenceAfterMs = Math.floor(leaseDurationMs - margin);
  return {
    leaseDurationMs,
    fenceAfterMs,
    staleAfterMs: Math.ceil(leaseDurationMs + margin),
    heartbeatMs: Math.floor(leaseDurationMs / 3),
    minHeartbeatGapMs: Math.floor(Math.min(1000, leaseDurationMs / 6)),
    // A write still in flight when the fence falls is of no use any more.
    writeTimeoutMs: Math.max(1000, fenceAfterMs),
  };
}

/**
 * How much later than sluice the upstream may notice that a stream ended. An end the
 * sidecar sees at t, the provider may see at t + lag and count from there for its own
 * release delay; every hold of a slot after an unclean end covers a lag up to this.
 */
export const releaseMarginMs = 2000;

/**
 * How long a slot stays counted after an unclean end, a sidecar restart or a pod gone:
 * the provider's release delay, plus the margin by which it may notice the end later.
 */
export function slotHoldMs(budget: Pick<StreamBudget, 'spec'>): number {
  return budget.spec.reaping.upstreamReleaseDelaySeconds * 1000 + releaseMarginMs;
}

/**
 * How much later than the sidecar the provider may count a start: the time a handshake
 * takes to reach it. A pod's new-session window is the provider's 60 s and this margin.
 */
export const sessionStartMarginMs = 1000;

/** The window a pod's `newSessionsPerMinute` holds for: at most that many starts in any 61 s. */
export const sessionWindowMs = 60_000 + sessionStartMarginMs;

/** The resolution of `status.sessionWindow`: one entry per second of the window. */
export const sessionWindowSlotMs = 1000;

/**
 * How many of the starts in a reported `status.sessionWindow` are still inside the pod's
 * window `elapsedMs` after the report. Entry j counts starts that leave within (j, j + 1]
 * seconds of the report; each is taken to leave at the end of its second, so the count
 * never falls early. Reading a report later than it was written only makes it hold longer.
 */
export function startsStillInWindow(window: readonly number[] | undefined, elapsedMs: number): number {
  if (!window) return 0;
  let count = 0;
  for (let j = 0; j < window.length; j++) if ((j + 1) * sessionWindowSlotMs > elapsedMs) count += window[j] ?? 0;
  return count;
}

/**
 * How many of the starts in a reported `status.sessionWindow` the provider surely still
 * counts `elapsedMs` after the report was first seen: those that leave the pod's window
 * later than its margin and a report lag of up to `reportLagMs` after that.
 */
export function startsSurelyCounted(
  window: readonly number[] | undefined,
  elapsedMs: number,
  reportLagMs = 2000,
): number {
  if (!window) return 0;
  let count = 0;
  for (let j = 0; j < window.length; j++) {
    if (j * sessionWindowSlotMs > elapsedMs + sessionStartMarginMs + reportLagMs) count += window[j] ?? 0;
  }
  return count;
}

/**
 * The starts of a reported `status.sessionWindow` the sidecar made itself: less those it
 * holds for an earlier run (`status.sessionWindowInherited`), which it may never have made.
 */
export function startsMade(window: readonly number[] | undefined, inherited: readonly number[] | undefined): number[] {
  return (window ?? []).map((count, j) => Math.max(0, count - (inherited?.[j] ?? 0)));
}

/** When the next reported start leaves the window, counted from the report; undefined when none is left. */
export function nextWindowExit(window: readonly number[] | undefined, elapsedMs: number): number | undefined {
  if (!window) return undefined;
  for (let j = 0; j < window.length; j++) {
    const leaves = (j + 1) * sessionWindowSlotMs;
    if (leaves > elapsedMs && (window[j] ?? 0) > 0) return leaves;
  }
  return undefined;
}

/** True when the sidecar has acknowledged the lease's current grant. */
export function acknowledged(lease: Pick<StreamLease, 'spec' | 'status'>): boolean {
  return lease.status?.observedEpoch === lease.spec.epoch;
}

/** Grants compare by their two figures. */
export function sameGrant(a: StreamLeaseSpecGrant | undefined, b: StreamLeaseSpecGrant | undefined): boolean {
  return (a?.concurrency ?? 0) === (b?.concurrency ?? 0) && a?.newSessionsPerMinute === b?.newSessionsPerMinute;
}
