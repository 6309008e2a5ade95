/**
 * A budget's status and conditions, computed from what the reconcile saw. Pure, so the
 * rules for Ready and Degraded are tested without a cluster. Conditions keep their
 * lastTransitionTime unless their status changes, as Kubernetes conventions ask.
 */
import type { StreamBudgetStatus, StreamBudgetStatusCondition } from '../crds/api/index.js';

export type DegradedReason =
  | 'UpstreamRejecting'
  | 'OverCommitted'
  | 'LeasesStale'
  | 'NoPods'
  | 'ProjectSharedAcrossBudgets';

export interface BudgetFigures {
  generation: number;
  pods: number;
  allocated: number;
  inUse: number;
  queued: number;
  peakInUse: number;
  peakWindowSeconds: number;
  newSessionsPerMinute?: number;
  newSessionsCeilingPerMinute?: number;
  admittedTotal: number;
  rejectedTotal: number;
  reapedTotal: number;
  upstreamRejectedTotal: number;
  /** Active pods whose latest grant is not acknowledged yet. */
  pendingAcks: number;
  staleLeases: string[];
  overCommitted: { reserved: number; limit: number } | undefined;
  upstreamRejections: number;
  /** Other budgets (namespace/name) that name the same provider project. */
  sharedWith: string[];
}

/** The status to write, given the previous one (for transition times) and the time now. */
export function budgetStatus(
  figures: BudgetFigures,
  previous: StreamBudgetStatus | undefined,
  now: Date,
): StreamBudgetStatus {
  const problems: { reason: DegradedReason; message: string }[] = [];
  if (figures.overCommitted) {
    problems.push({
      reason: 'OverCommitted',
      message: `${figures.overCommitted.reserved} streams are reserved against a limit of ${figures.overCommitted.limit}; grants fall as streams end`,
    });
  }
  if (figures.staleLeases.length > 0) {
    problems.push({
      reason: 'LeasesStale',
      message: `No report from ${figures.staleLeases.length} pod(s) within the lease duration: ${figures.staleLeases.slice(0, 5).join(', ')}${figures.staleLeases.length > 5 ? ', …' : ''}; their grants stay reserved`,
    });
  }
  if (figures.upstreamRejections > 0) {
    problems.push({
      reason: 'UpstreamRejecting',
      message: `The upstream refused ${figures.upstreamRejections} handshake(s) in the last minute`,
    });
  }
  if (figures.sharedWith.length > 0) {
    problems.push({
      reason: 'ProjectSharedAcrossBudgets',
      message: `Budgets ${figures.sharedWith.join(', ')} name the same project: their limits add up upstream`,
    });
  }

  let ready: Omit<StreamBudgetStatusCondition, 'lastTransitionTime'>;
  if (figures.pods === 0) {
    ready = {
      type: 'Ready',
      status: 'False',
      reason: 'NoPods',
      message: 'No running pod is selected by spec.podSelector',
    };
  } else if (figures.pendingAcks > 0) {
    ready = {
      type: 'Ready',
      status: 'False',
      reason: 'GrantsPending',
      message: `${figures.pendingAcks} pod(s) have not acknowledged their grant yet`,
    };
  } else {
    ready = {
      type: 'Ready',
      status: 'True',
      reason: 'Allocated',
      message: `${figures.allocated} of the limit granted to ${figures.pods} pod(s)`,
    };
  }
  const degraded: Omit<StreamBudgetStatusCondition, 'lastTransitionTime'> =
    problems.length > 0
      ? {
          type: 'Degraded',
          status: 'True',
          reason: (problems[0] as { reason: DegradedReason }).reason,
          message: problems.map((p) => p.message).join('; '),
        }
      : { type: 'Degraded', status: 'False', reason: 'AsExpected', message: 'Within the limit; every pod reports' };

  const conditions = [ready, degraded].map((c) => {
    const before = previous?.conditions?.find((p) => p.type === c.type);
    const lastTransitionTime =
      before && before.status === c.status ? before.lastTransitionTime : now.toISOString().replace(/\.\d+Z$/, 'Z');
    return { ...c, observedGeneration: figures.generation, lastTransitionTime };
  });

  return {
    observedGeneration: figures.generation,
    conditions,
    pods: figures.pods,
    allocated: figures.allocated,
    inUse: figures.inUse,
    queued: figures.queued,
    peakInUse: figures.peakInUse,
    peakWindowSeconds: figures.peakWindowSeconds,
    ...(figures.newSessionsPerMinute !== undefined && { newSessionsPerMinute: figures.newSessionsPerMinute }),
    ...(figures.newSessionsCeilingPerMinute !== undefined && {
      newSessionsCeilingPerMinute: figures.newSessionsCeilingPerMinute,
    }),
    admittedTotal: figures.admittedTotal,
    rejectedTotal: figures.rejectedTotal,
    reapedTotal: figures.reapedTotal,
    upstreamRejectedTotal: figures.upstreamRejectedTotal,
  };
}

/** Deep equality of two statuses, for "write only what changed". */
export function sameStatus(a: StreamBudgetStatus | undefined, b: StreamBudgetStatus): boolean {
  return JSON.stringify(canonical(a ?? {})) === JSON.stringify(canonical(b));
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}
