/**
 * A token bucket for new sessions: `ratePerMinute` tokens a minute, at most `burst` in
 * hand. Pure: the caller supplies the time in milliseconds. The grant can change at
 * any moment; tokens in hand are then clipped to the new burst.
 */
export class TokenBucket {
  #ratePerMs: number;
  #burst: number;
  #tokens: number;
  #updatedAt: number;

  /** A bucket starts full, or with `tokens` in hand (e.g. 0: what an earlier run spent is unknown). */
  constructor(ratePerMinute: number, burst: number, now: number, tokens = burst) {
    this.#ratePerMs = ratePerMinute / 60_000;
    this.#burst = Math.max(burst, 0);
    this.#tokens = Math.min(Math.max(tokens, 0), this.#burst);
    this.#updatedAt = now;
  }

  /** Tokens in hand at `now`, fractions included. */
  tokens(now: number): number {
    this.#refill(now);
    return this.#tokens;
  }

  /** Takes one token if there is one. */
  take(now: number): boolean {
    this.#refill(now);
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Gives back a token taken for a stream that never started. */
  giveBack(now: number): void {
    this.#refill(now);
    this.#tokens = Math.min(this.#burst, this.#tokens + 1);
  }

  /** Milliseconds from `now` until a token is in hand; Infinity when the rate is 0. */
  waitMs(now: number): number {
    this.#refill(now);
    if (this.#tokens >= 1) return 0;
    if (this.#ratePerMs === 0 || this.#burst < 1) return Number.POSITIVE_INFINITY;
    return Math.ceil((1 - this.#tokens) / this.#ratePerMs);
  }

  /** Puts a new grant in force. */
  update(ratePerMinute: number, burst: number, now: number): void {
    this.#refill(now);
    this.#ratePerMs = ratePerMinute / 60_000;
    this.#burst = Math.max(burst, 0);
    this.#tokens = Math.min(this.#tokens, this.#burst);
  }

  #refill(now: number): void {
    const elapsed = now - this.#updatedAt;
    if (elapsed > 0) {
      this.#tokens = Math.min(this.#burst, this.#tokens + elapsed * this.#ratePerMs);
      this.#updatedAt = now;
    }
  }
}
