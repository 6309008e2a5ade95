/**
 * The operator's model of the provider's new-session limit when it autoscales. The
 * provider steps its limit once every interval, at moments sluice cannot see: up by
 * `stepPercent` when the starts of the last minute are at or above `scaleUpAtPercent`
 * of it, down (toward the default) when they are below `scaleDownBelowPercent`.
 *
 * The model keeps the range the provider's limit can be in: `low`, what the fleet is held
 * to, and `high`. Every decision falls on the safe side:
 * - `low` rises only after a whole interval (the provider surely stepped once in it), to
 *   the lowest any limit in the range can have reached on the least use seen: a limit at
 *   the low end steps up, one higher up may only have held, so it follows at most one
 *   interval behind;
 * - `low` falls as soon as any limit in the range could have stepped down (use against
 *   `high`), to the lowest such a step gives;
 * - `high` rises as soon as any limit in the range could have stepped up (use against
 *   `low`), at most once an interval, and falls only after an interval in which every
 *   limit would have stepped down.
 * Reported use lags the provider's count a little, so it is taken as uncertain by 5 %
 * (at least one start) each way.
 */
import type { StreamBudgetSpecNewSessions } from '../crds/api/index.js';

/** The model's state, as a budget's status carries it, so that a new leader resumes it. */
export interface SessionRange {
  low: number;
  high: number;
}

interface Step {
  level: number;
  until: number;
}

/** The oldest step still recent at `now`, the older ones dropped. */
function recent(steps: Step[], now: number): Step | undefined {
  while (steps.length > 0 && (steps[0] as Step).until <= now) steps.shift();
  return steps[0];
}

export class SessionModel {
  readonly spec: StreamBudgetSpecNewSessions;
  #low: number;
  #high: number;
  /** Since when every limit in the range would have stepped up (down), at every observation. */
  #upSince: number | undefined;
  #leastSince = Number.POSITIVE_INFINITY;
  #downSince: number | undefined;
  /**
   * The last interval's steps of the range's ends, oldest first: a limit above `level` of a
   * rise (below `level` of a fall) can be held only by stepping since, and the provider
   * steps at most once an interval, so it does not step again `until` then. A limit that
   * has not stepped may, however recently another did.
   */
  #rises: Step[] = [];
  #falls: Step[] = [];

  /**
   * `resume`: the range a previous leader wrote into the status. The provider may have
   * stepped up once more since, so `high` starts a step higher.
   */
  constructor(spec: StreamBudgetSpecNewSessions, _now: number, resume?: SessionRange) {
    this.spec = spec;
    const auto = spec.autoscale;
    this.#low = spec.perMinute;
    this.#high = spec.perMinute;
    if (auto && resume && resume.low >= spec.perMinute && resume.high >= resume.low) {
      this.#low = Math.min(resume.low, auto.maxPerMinute);
      this.#high = Math.min(auto.maxPerMinute, Math.max(this.#low, step(resume.high, auto.stepPercent, 'most')));
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
  observe(starts: number | { least: number; most: number }, now: number): number {
    const reported = typeof starts === 'number' ? { least: starts, most: starts } : starts;
    const auto = this.spec.autoscale;
    if (!auto) {
      this.#low = this.#high = this.spec.perMinute;
      return this.#low;
    }
    const interval = auto.intervalSeconds * 1000;
    const slack = Math.max(1, Math.ceil(reported.most * 0.05));
    const least = Math.max(0, reported.least - slack);
    const most = reported.most + slack;
    const upAt = auto.scaleUpAtPercent / 100;
    const downBelow = auto.scaleDownBelowPercent / 100;
    const floor = this.spec.perMinute;
    const max = auto.maxPerMinute;

    // The provider's limit may have stepped up: the most use against the lowest limits.
    const mayRise = Math.min(this.#high, recent(this.#rises, now)?.level ?? this.#high);
    const highestUp = Math.min(mayRise, Math.floor(most / upAt));
    if (highestUp >= this.#low) {
      const stepped = Math.min(max, step(highestUp, auto.stepPercent, 'most'));
      if (stepped > this.#high) {
        // Use is reported a little late: its step may have come half an interval ago.
        this.#rises.push({ level: this.#high, until: now + interval / 2 });
        this.#high = stepped;
      }
    }

    // It may have stepped down: the least use against the highest limits.
    const mayFall = Math.max(this.#low, recent(this.#falls, now)?.level ?? this.#low);
    const lowestDown = Math.max(mayFall, Math.floor(least / downBelow) + 1);
    if (lowestDown <= this.#high) {
      const stepped = Math.max(floor, step(lowestDown, -auto.stepPercent, 'least'));
      if (stepped < this.#low) {
        this.#falls.push({ level: this.#low, until: now + interval / 2 });
        this.#low = stepped;
      }
    }

    // After a whole interval the provider surely stepped once, on use at least the least
    // seen since: the lowest it can have reached. A limit at the low end that rose, or one
    // higher up that held (a limit held only while use is at least its down threshold).
    this.#upSince ??= now;
    this.#leastSince = Math.min(this.#leastSince, least);
    if (now - this.#upSince >= interval) {
      const seen = this.#leastSince;
      const atLow =
        seen >= upAt * this.#low
          ? Math.min(max, step(this.#low, auto.stepPercent, 'least'))
          : seen >= downBelow * this.#low
            ? this.#low
            : Math.max(floor, step(this.#low, -auto.stepPercent, 'least'));
      let lowest = atLow;
      const heldFrom = Math.max(this.#low, Math.floor(seen / upAt) + 1);
      if (heldFrom <= this.#high) lowest = Math.min(lowest, heldFrom);
      const fellFrom = Math.max(this.#low, Math.floor(seen / downBelow) + 1);
      if (fellFrom <= this.#high)
        lowest = Math.min(lowest, Math.max(floor, step(fellFrom, -auto.stepPercent, 'least')));
      if (lowest > this.#low) this.#low = lowest;
      this.#upSince = now;
      this.#leastSince = Number.POSITIVE_INFINITY;
    }

    // It surely stepped down.
    if (most < downBelow * this.#low) {
      this.#downSince ??= now;
      if (now - this.#downSince >= interval) {
        this.#high = Math.max(floor, step(this.#high, -auto.stepPercent, 'most'));
        this.#downSince = now;
      }
    } else {
      this.#downSince = undefined;
    }

    this.#high = Math.max(this.#high, this.#low);
    return this.#low;
  }
}

/**
 * One step of `percent` (negative: down). How the provider rounds is not documented, so
 * the bound that must not be too high rounds down and the one that must not be too low up.
 */
function step(limit: number, percent: number, bound: 'least' | 'most'): number {
  const exact = (limit * (100 + percent)) / 100;
  return bound === 'least' ? Math.floor(exact) : Math.ceil(exact);
}
