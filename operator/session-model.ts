/**
 * The operator's model of the provider's new-session limit when it autoscales. The
 * provider steps its limit once every interval, at a moment sluice cannot see: up by
 * `stepPercent` when the starts of the last minute are at or above `scaleUpAtPercent`
 * of it, down (toward the default) when they are below `scaleDownBelowPercent`.
 *
 * The model does not guess that moment; it follows every one it can be. The interval is
 * cut into phases of about half a second, and for each phase the model keeps the range
 * the limit can be in had the provider stepped there: each time the phase comes round,
 * the range moves to every limit a step can reach from it on the use seen then, the
 * lowest use against the low end's rule for the new low end, the highest against the
 * high end's for the new high end, so each error falls on the safe side. What the fleet
 * is held to is the lowest limit any phase allows, so it never runs ahead of it, and
 * follows it one interval (and a phase) behind while use clears the thresholds by the
 * slack below; nearer a threshold it can trail further.
 *
 * Reported use lags the provider's count a little, so it is taken as uncertain by 5 %
 * (at least one start) each way. How the provider rounds a step is not documented: the
 * low end rounds down, the high end up.
 */
import type { StreamBudgetSpecNewSessions, StreamBudgetSpecNewSessionsAutoscale } from '../crds/api/index.js';

/** The model's state, as a budget's status carries it, so that a new leader resumes it. */
export interface SessionRange {
  low: number;
  high: number;
}

/** Starts in the provider's window: at least `least`, at most `most`. */
interface Use {
  least: number;
  most: number;
}

interface Phase {
  /** The range of the limit, had the provider stepped in this phase. */
  range: SessionRange;
  /** When this phase's next window opens; it lasts `#width`. */
  dueAt: number;
  /** The use seen around the open window: the provider steps on a figure within it. */
  seen?: Use;
}

/** The finest phase the model tells apart, and the most phases it keeps. */
const phaseMs = 500;
const maxPhases = 120;

export class SessionModel {
  readonly spec: StreamBudgetSpecNewSessions;
  readonly #phases: Phase[] = [];
  readonly #interval: number = 0;
  readonly #width: number = 0;
  /** The use seen at the previous observation, which opens the next window with it. */
  #lastUse: Use | undefined;
  /** A resumed range: the provider may have stepped since it was written, unseen. */
  #resumed: boolean;
  #low: number;
  #high: number;

  /**
   * `resume`: the range a previous leader wrote into the status. The provider may have
   * stepped up once more since, so the high end starts a step higher, and the first use
   * seen may have stepped any phase once.
   */
  constructor(spec: StreamBudgetSpecNewSessions, now: number, resume?: SessionRange) {
    this.spec = spec;
    const auto = spec.autoscale;
    this.#low = this.#high = spec.perMinute;
    this.#resumed = false;
    if (!auto) return;
    if (resume && resume.low >= spec.perMinute && resume.high >= resume.low) {
      this.#low = Math.min(resume.low, auto.maxPerMinute);
      this.#high = Math.min(auto.maxPerMinute, Math.max(this.#low, step(resume.high, auto.stepPercent, 'most')));
      this.#resumed = true;
    }
    const interval = auto.intervalSeconds * 1000;
    const count = Math.min(maxPhases, Math.max(1, Math.round(interval / phaseMs)));
    this.#interval = interval;
    this.#width = interval / count;
    for (let k = 0; k < count; k++) {
      this.#phases.push({ range: { low: this.#low, high: this.#high }, dueAt: now + k * this.#width });
    }
  }

  /** The per-minute budget to split now: the lowest limit the provider can hold. */
  get perMinute(): number {
    return this.#low;
  }

  /** The highest limit the provider can hold now. */
  get ceiling(): number {
    return this.#high;
  }

  /**
   * Feeds what the pods reported of the starts inside the provider's window: at least
   * `least`, at most `most` (a single figure for both when known exactly); returns the
   * budget to split.
   */
  observe(starts: number | Use, now: number): number {
    const auto = this.spec.autoscale;
    if (!auto) return this.#low;
    const reported = typeof starts === 'number' ? { least: starts, most: starts } : starts;
    const slack = Math.max(1, Math.ceil(reported.most * 0.05));
    const use = { least: Math.max(0, reported.least - slack), most: reported.most + slack };
    // Before the first observation use is unknown: any step is possible.
    const previous = this.#lastUse ?? { least: 0, most: Number.POSITIVE_INFINITY };
    this.#lastUse = use;

    let low = Number.POSITIVE_INFINITY;
    let high = 0;
    for (const phase of this.#phases) {
      if (this.#resumed) phase.range = union(phase.range, this.#next(auto, phase.range, use));
      // Windows that opened by now: a step in one was on use between the last observation
      // at or before its start and the first one after its end.
      while (now >= phase.dueAt) {
        phase.seen = join(phase.seen ?? (phase.dueAt < now ? previous : use), use);
        if (now < phase.dueAt + this.#width) break;
        phase.range = this.#next(auto, phase.range, phase.seen);
        phase.seen = undefined;
        phase.dueAt += this.#interval;
      }
      // Inside its window the provider may have stepped or not yet.
      const range = phase.seen ? union(phase.range, this.#next(auto, phase.range, phase.seen)) : phase.range;
      low = Math.min(low, range.low);
      high = Math.max(high, range.high);
    }
    this.#resumed = false;
    this.#low = low;
    this.#high = high;
    return low;
  }

  /**
   * Every limit one step can reach from `range` on `use`. A limit steps up while
   * use ≥ up% of it, holds while down% of it ≤ use < up% of it, and steps down below.
   * So on the least use the lowest result is the low end's, or that of the smallest limit
   * that holds or steps down; on the most use the highest is that of the largest limit
   * that steps up or holds, or the high end's.
   */
  #next(auto: StreamBudgetSpecNewSessionsAutoscale, range: SessionRange, use: Use): SessionRange {
    const { scaleUpAtPercent: upAt, scaleDownBelowPercent: downBelow, stepPercent } = auto;
    const floor = this.spec.perMinute;
    const max = auto.maxPerMinute;
    const up = (limit: number, bound: 'least' | 'most') => Math.min(max, step(limit, stepPercent, bound));
    const down = (limit: number, bound: 'least' | 'most') => Math.max(floor, step(limit, -stepPercent, bound));
    const after = (limit: number, starts: number, bound: 'least' | 'most') =>
      starts * 100 >= upAt * limit ? up(limit, bound) : starts * 100 >= downBelow * limit ? limit : down(limit, bound);

    // The smallest limits that hold, and that step down, on `least` starts.
    const least = use.least;
    let low = after(range.low, least, 'least');
    const heldFrom = Math.max(range.low, Math.floor((least * 100) / upAt) + 1);
    if (heldFrom <= range.high) low = Math.min(low, after(heldFrom, least, 'least'));
    const fellFrom = Math.max(range.low, Math.floor((least * 100) / downBelow) + 1);
    if (fellFrom <= range.high) low = Math.min(low, after(fellFrom, least, 'least'));

    // The largest limits that step up, and that hold, on `most` starts.
    const most = use.most;
    let high = after(range.high, most, 'most');
    const roseTo = Math.min(range.high, Math.floor((most * 100) / upAt));
    if (roseTo >= range.low) high = Math.max(high, after(roseTo, most, 'most'));
    const heldTo = Math.min(range.high, Math.floor((most * 100) / downBelow));
    if (heldTo >= range.low) high = Math.max(high, after(heldTo, most, 'most'));

    return { low, high: Math.max(low, high) };
  }
}

function union(a: SessionRange, b: SessionRange): SessionRange {
  return { low: Math.min(a.low, b.low), high: Math.max(a.high, b.high) };
}

function join(a: Use, b: Use): Use {
  return { least: Math.min(a.least, b.least), most: Math.max(a.most, b.most) };
}

/**
 * One step of `percent` (negative: down). How the provider rounds is not documented, so
 * the bound that must not be too high rounds down and the one that must not be too low up.
 */
function step(limit: number, percent: number, bound: 'least' | 'most'): number {
  const exact = (limit * (100 + percent)) / 100;
  return bound === 'least' ? Math.floor(exact) : Math.ceil(exact);
}
