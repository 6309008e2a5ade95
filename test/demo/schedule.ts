/**
 * What the demo's load generator asks of each pod over time: one pod hot, then
 * another, then every pod busy beyond the budget, then quiet. A pure function of the
 * elapsed time, so the table, the generator and the summary agree on the phase.
 */

export interface Phase {
  name: string;
  /** Streams wanted per pod, by pod index. */
  demand: number[];
  startMs: number;
  endMs: number;
}

/** Shares of the run each phase takes, in order. */
const shares = [0.25, 0.25, 0.35, 0.15];

/** The phases of a run of `durationMs` over `pods` pods named by `podNames`. */
export function phases(durationMs: number, podNames: readonly string[], limit: number): Phase[] {
  const pods = podNames.length;
  // A hot pod wants most of the budget, the others a little: together under the limit,
  // so every stream can be served once the grants have followed.
  const hot = Math.round(limit * 0.7);
  const warm = Math.max(1, Math.floor((limit * 0.2) / Math.max(1, pods - 1)));
  const hotOn = (index: number) => podNames.map((_, i) => (i === index ? hot : warm));
  const busy = Math.ceil((limit * 1.5) / pods);
  const quiet = Math.max(1, Math.round(limit * 0.05));
  const second = pods > 1 ? 1 : 0;
  const plan: Omit<Phase, 'startMs' | 'endMs'>[] = [
    { name: `${podNames[0]} hot`, demand: hotOn(0) },
    { name: `${podNames[second]} hot`, demand: hotOn(second) },
    { name: 'all busy, beyond the limit', demand: podNames.map(() => busy) },
    { name: 'quiet', demand: podNames.map(() => quiet) },
  ];
  let startMs = 0;
  return plan.map((phase, i) => {
    const endMs = i === plan.length - 1 ? durationMs : startMs + Math.round(durationMs * (shares[i] as number));
    const timed = { ...phase, startMs, endMs };
    startMs = endMs;
    return timed;
  });
}

/** The phase at `elapsedMs` (the last one once the run is over). */
export function phaseAt(plan: readonly Phase[], elapsedMs: number): { phase: Phase; index: number } {
  const index = plan.findIndex((p) => elapsedMs < p.endMs);
  const at = index === -1 ? plan.length - 1 : index;
  return { phase: plan[at] as Phase, index: at };
}
