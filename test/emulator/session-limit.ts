/**
 * A provider's new-session limit: starts are counted over a sliding 60 s window and
 * the limit may scale with use, by the documented rule. Every `intervalSeconds` the
 * limit grows by `stepPercent` while the starts of the last minute are at or above
 * `scaleUpAtPercent` of it (up to `maxPerMinute`), and shrinks back toward its default
 * while they are below `scaleDownBelowPercent`. Pure: the caller supplies the time.
 */

export interface AutoscaleRule {
  scaleUpAtPercent: number;
  stepPercent: number;
  intervalSeconds: number;
  scaleDownBelowPercent: number;
  maxPerMinute: number;
}

export interface SessionLimitConfig {
  perMinute: number;
  autoscale?: AutoscaleRule;
  /**
   * How a step rounds: down as the provider's documented sequence does (100, 110, 121,
   * 133, 146), or up. The default is down.
   */
  rounding?: 'down' | 'up';
}

const windowMs = 60_000;

export class SessionLimit {
  readonly #config: SessionLimitConfig;
  /** Start times within the window, oldest first. */
  readonly #starts: number[] = [];
  #head = 0;
  #limit: number;
  #nextStepAt: number;

  constructor(config: SessionLimitConfig, now: number) {
    this.#config = config;
    this.#limit = config.perMinute;
    this.#nextStepAt = now + (config.autoscale?.intervalSeconds ?? 60) * 1000;
  }

  /** The limit in force at `now`, after any scaling steps that fell due. */
  limit(now: number): number {
    this.#advance(now);
    return this.#limit;
  }

  /** Starts within the 60 s before `now`. */
  startsInWindow(now: number): number {
    // Scaling steps due before `now` judge use from starts that expiring would drop.
    this.#advance(now);
    this.#expire(now);
    return this.#starts.length - this.#head;
  }

  /** Whether one more start at `now` stays within the limit. */
  allows(now: number): boolean {
    return this.startsInWindow(now) < this.limit(now);
  }

  /** Records a start at `now`. */
  record(now: number): void {
    this.#advance(now);
    this.#starts.push(now);
  }

  #expire(now: number): void {
    while (this.#head < this.#starts.length && (this.#starts[this.#head] as number) <= now - windowMs) this.#head += 1;
    // Compact now and then so the array does not grow without bound.
    if (this.#head > 1024 && this.#head * 2 > this.#starts.length) {
      this.#starts.splice(0, this.#head);
      this.#head = 0;
    }
  }

  #advance(now: number): void {
    const rule = this.#config.autoscale;
    if (!rule) return;
    const interval = rule.intervalSeconds * 1000;
    while (now >= this.#nextStepAt) {
      // Use is judged at each step from the starts of the minute before it.
      this.#expire(this.#nextStepAt);
      const used = this.#starts.length - this.#head;
      const round = this.#config.rounding === 'up' ? Math.ceil : Math.floor;
      if (used * 100 >= rule.scaleUpAtPercent * this.#limit) {
        this.#limit = Math.min(rule.maxPerMinute, round((this.#limit * (100 + rule.stepPercent)) / 100));
      } else if (used * 100 < rule.scaleDownBelowPercent * this.#limit) {
        this.#limit = Math.max(this.#config.perMinute, round((this.#limit * (100 - rule.stepPercent)) / 100));
      }
      this.#nextStepAt += interval;
    }
  }
}
