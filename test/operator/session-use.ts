/**
 * The new-session budget's use under callers who always want more than it: skewed across
 * four pods, then moved to another pod, on the fleet model (the shipped planner, gate and
 * lease sync). Shared by the property tests and `npm run bench`.
 */
import type { AutoscaleRule } from '../emulator/session-limit.js';
import { Fleet } from './fleet-model.js';

export interface SessionUse {
  /** Starts in each whole minute of the run, as the provider counted them. */
  perMinute: number[];
  /** The most starts in any 60 s window. */
  busiestWindow: number;
  violations: string[];
  modelAhead: string[];
  trace: { at: number; model: number; ceiling: number; provider: number }[];
  /**
   * With autoscale, after the first minute: the longest the model was behind the
   * provider, the time since the provider's limit was last within a start of the model's.
   */
  behindMs: number;
}

/** Runs `minutes` minutes; the skew moves from pod 0 to pod 2 at `moveAtMs`. */
export function sessionUse(
  budget: number,
  seed: number,
  options: { minutes?: number; moveAtMs?: number; autoscale?: AutoscaleRule } = {},
): SessionUse {
  const minutes = options.minutes ?? 5;
  const moveAtMs = options.moveAtMs ?? 150_000;
  const fleet = new Fleet(
    {
      limit: 100,
      minPerPod: 1,
      sessionsPerMinute: budget,
      ...(options.autoscale && { autoscale: options.autoscale }),
      leaseDurationMs: 3000,
      releaseDelayMs: 1000,
      tickMs: 250,
      // Short streams: about a second each.
      hangUpChance: 0.25,
      chaos: false,
    },
    seed,
  );
  fleet.sessionTrace = [];
  // Callers per pod: 14/2/2/2, every one of them starting a new stream as soon as one ends.
  const pods = [14, 2, 2, 2].map((callers) => fleet.addPod(callers));
  let moved = false;
  while (fleet.now < minutes * 60_000) {
    if (!moved && fleet.now >= moveAtMs) {
      moved = true;
      fleet.demand.set(pods[0] as string, 2);
      fleet.demand.set(pods[2] as string, 14);
    }
    fleet.tick();
  }
  const starts = fleet.upstream.startTimes;
  const perMinute = Array.from(
    { length: minutes },
    (_, m) => starts.filter((t) => t >= m * 60_000 && t < (m + 1) * 60_000).length,
  );
  const trace = fleet.sessionTrace ?? [];
  let behindMs = 0;
  for (let j = 0; j < trace.length; j++) {
    const point = trace[j] as (typeof trace)[number];
    if (point.at < 60_000) continue;
    let i = j;
    while (i > 0 && (trace[i] as (typeof trace)[number]).provider > point.model + 1) i--;
    behindMs = Math.max(behindMs, point.at - (trace[i] as (typeof trace)[number]).at);
  }
  return {
    behindMs,
    perMinute,
    busiestWindow: busiestWindow(starts),
    violations: fleet.upstream.violations,
    modelAhead: fleet.upstream.modelAhead,
    trace,
  };
}

/** The most of `starts` (times in ms, in order) in any 60 s window. */
export function busiestWindow(starts: readonly number[]): number {
  let most = 0;
  for (let i = 0, j = 0; j < starts.length; j++) {
    while ((starts[i] as number) <= (starts[j] as number) - 60_000) i++;
    most = Math.max(most, j - i + 1);
  }
  return most;
}
