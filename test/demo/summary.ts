/**
 * The demo's closing figures: the referee's exact peak against the limit, rejections
 * local and upstream, and how much of the budget the fleet used while demand exceeded
 * it. Samples are plain data taken during the run; the figures are computed from them.
 */
import { formatTable } from './dashboard.js';
import type { Phase } from './schedule.js';

export interface Sample {
  elapsedMs: number;
  phaseIndex: number;
  /** Streams the generator wanted across the pods. */
  demand: number;
  /** Streams the generator held open. */
  open: number;
  /** Streams the referee counted upstream. */
  upstreamInUse: number;
}

export interface Outcome {
  limit: number;
  pods: number;
  elapsedMs: number;
  interrupted: boolean;
  phases: readonly Phase[];
  samples: readonly Sample[];
  referee: { peak: number; overLimitMoments: number; rejected: number };
  /** Handshakes the sidecars saw the upstream refuse, as the budget's status sums them. */
  upstreamRejected: number;
  /** 429s the sidecars reported in their leases. */
  localRejected: number;
  generator: { admitted: number; refused: number; failed: number; dropped: number };
}

export interface Utilization {
  seconds: number;
  average: number;
  peak: number;
  /** Seconds from demand first exceeding the limit to the upstream holding 95 % of it. */
  fillSeconds: number | undefined;
}

/** Budget use while the generator wanted more than the limit, or undefined if it never did. */
export function utilizationOverLimit(samples: readonly Sample[], limit: number): Utilization | undefined {
  const over = samples.filter((s) => s.demand > limit);
  if (over.length === 0) return undefined;
  const first = samples.indexOf(over[0] as Sample);
  const full = samples.slice(first).find((s) => s.demand > limit && s.upstreamInUse >= Math.ceil(limit * 0.95));
  const intervals = samples.slice(1).map((s, i) => s.elapsedMs - (samples[i] as Sample).elapsedMs);
  const step = intervals.length > 0 ? intervals.reduce((a, b) => a + b, 0) / intervals.length : 0;
  return {
    seconds: (over.length * step) / 1000,
    average: over.reduce((sum, s) => sum + s.upstreamInUse, 0) / over.length,
    peak: Math.max(...over.map((s) => s.upstreamInUse)),
    fillSeconds: full ? (full.elapsedMs - (over[0] as Sample).elapsedMs) / 1000 : undefined,
  };
}

const percent = (part: number, whole: number) => `${Math.round((100 * part) / whole)} %`;

export function renderSummary(o: Outcome): string[] {
  const { limit } = o;
  const never = o.referee.overLimitMoments === 0 && o.referee.peak <= limit;
  const upstreamRejections = o.referee.rejected + o.upstreamRejected;
  const lines = [
    `Summary: ${(o.elapsedMs / 1000).toFixed(0)} s of load on ${o.pods} pods sharing a limit of ${limit}${o.interrupted ? ' (interrupted)' : ''}`,
    '',
    `  upstream peak        ${o.referee.peak} of ${limit}: ${never ? 'never over the limit' : `OVER THE LIMIT ${o.referee.overLimitMoments} times`} (the referee's exact count)`,
    `  upstream rejections  ${upstreamRejections} (sidecars refused upstream ${o.upstreamRejected}, referee refused ${o.referee.rejected})`,
    `  local rejections     ${o.localRejected} HTTP 429 from the sidecars; the load generator saw ${o.generator.refused} (and ${o.generator.failed} other failures)`,
    `  streams admitted     ${o.generator.admitted}${o.generator.dropped > 0 ? `, ${o.generator.dropped} ended by the fleet` : ''}`,
  ];
  const use = utilizationOverLimit(o.samples, limit);
  if (use) {
    const fill =
      use.fillSeconds === undefined
        ? 'never reached 95 % of the limit'
        : `95 % of the limit in use ${use.fillSeconds.toFixed(1)} s after demand exceeded it`;
    lines.push(
      `  budget use           while demand exceeded the limit (${use.seconds.toFixed(1)} s): average ${use.average.toFixed(0)} of ${limit} (${percent(use.average, limit)}), peak ${use.peak} (${percent(use.peak, limit)}); ${fill}`,
    );
  }
  const rows = o.phases.flatMap((phase, index) => {
    const inPhase = o.samples.filter((s) => s.phaseIndex === index);
    if (inPhase.length === 0) return [];
    const demand = Math.max(...inPhase.map((s) => s.demand));
    const open = inPhase.reduce((sum, s) => sum + s.open, 0) / inPhase.length;
    const upstream = inPhase.reduce((sum, s) => sum + s.upstreamInUse, 0) / inPhase.length;
    const served =
      inPhase.reduce((sum, s) => sum + Math.min(1, s.open / Math.max(1, Math.min(s.demand, limit))), 0) /
      inPhase.length;
    const seconds = (Math.min(phase.endMs, o.elapsedMs) - phase.startMs) / 1000;
    return [[phase.name, seconds.toFixed(1), demand, open.toFixed(0), upstream.toFixed(0), percent(served, 1)]];
  });
  if (rows.length > 0) {
    lines.push(
      '',
      ...formatTable(['phase', 'seconds', 'demand', 'avg open', 'avg upstream', 'served'], rows).map((l) => `  ${l}`),
      '',
      '  served: streams open as a share of what could be served (the demand, at most the limit).',
    );
  }
  return lines;
}
