/**
 * The operator's model of the upstream's current new-session limit. With autoscale the
 * provider raises its limit by a step while use stays at or above a threshold for an
 * interval, and lowers it back toward the default when use drops. The model errs on the
 * safe side both ways: it rises one interval later than the upstream can, and falls at once.
 */
import type { StreamBudgetSpecNewSessions } from '../crds/api/index.js';

export class SessionModel {
  #perMinute: number;
  #aboveSince: number | undefined;
  #raisedAt: number;

  constructor(
    readonly spec: StreamBudgetSpecNewSessions,
    now: number,
  ) {
    this.#perMinute = spec.perMinute;
    this.#raisedAt = now;
  }

  /** The per-minute budget to split now. */
  get perMinute(): number {
    return this.#perMinute;
  }

  /** Feeds the starts of the last minute across the fleet; returns the modelled limit. */
  observe(startsLastMinute: number, now: number): number {
    const auto = this.spec.autoscale;
    if (!auto) {
      this.#perMinute = this.spec.perMinute;
      return this.#perMinute;
    }
    const use = (startsLastMinute / this.#perMinute) * 100;
    if (use < auto.scaleDownBelowPercent) {
      this.#perMinute = this.spec.perMinute;
      this.#aboveSince = undefined;
      return this.#perMinute;
    }
    if (use >= auto.scaleUpAtPercent) {
      this.#aboveSince ??= now;
      // The upstream may step up after one interval at this use; we follow one interval later.
      const interval = auto.intervalSeconds * 1000;
      if (now - this.#aboveSince >= 2 * interval && now - this.#raisedAt >= interval) {
        const next = Math.floor(this.#perMinute * (1 + auto.stepPercent / 100));
        this.#perMinute = Math.min(auto.maxPerMinute, Math.max(next, this.#perMinute + 1));
        this.#raisedAt = now;
        this.#aboveSince = now;
      }
    } else {
      this.#aboveSince = undefined;
    }
    return this.#perMinute;
  }
}
