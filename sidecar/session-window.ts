/**
 * A pod's new-session window: at most `quota` starts in any 61 s (the provider's 60 s
 * window and the margin by which it may count a start later than the pod). Starts are
 * also paced: tokens come at `quota` per window, with a burst of a tenth of it in hand
 * (one at least), so a busy pod spreads its quota over the window instead of spending it
 * at once and then waiting a minute. A saturated pod still starts its whole quota every
 * window, and the starts it holds can be reported, so the operator knows when capacity a
 * pod gave up leaves the provider's window.
 *
 * Starts held for an earlier run of the sidecar are kept apart from the run's own, so the
 * report can say which starts the provider surely saw.
 *
 * Starts are kept as the times they leave the window, rounded up to 100 ms and merged,
 * so memory stays bounded whatever the quota. Pure: the caller supplies the time.
 */
import { sessionWindowMs, sessionWindowSlotMs } from '../crds/api/index.js';

const resolutionMs = 100;
/** The last entry of a report: a start leaves within a window of when it was made or held. */
const lastSlot = Math.ceil(sessionWindowMs / sessionWindowSlotMs) - 1;

export class SessionWindow {
  #quota: number;
  /** Starts this run made, by when they leave the window. */
  readonly #made = new Leaves();
  /** Starts held for an earlier run: it may have made them. */
  readonly #held = new Leaves();
  #tokens: number;
  #tokensAt = Number.NEGATIVE_INFINITY;

  constructor(quota: number) {
    this.#quota = Math.max(0, quota);
    this.#tokens = burstOf(this.#quota);
  }

  get quota(): number {
    return this.#quota;
  }

  /** Tokens in hand at most: a tenth of the quota, one at least. */
  get burst(): number {
    return burstOf(this.#quota);
  }

  /** Starts inside the window at `now`, those held for an earlier run included. */
  count(now: number): number {
    return this.#made.count(now) + this.#held.count(now);
  }

  /** Whether one more start fits at `now`. */
  allows(now: number): boolean {
    return this.count(now) < this.#quota && this.#refill(now) >= 1;
  }

  /** Records a start at `now`. The caller checked `allows`. */
  take(now: number): void {
    this.#tokens = Math.max(0, this.#refill(now) - 1);
    this.#made.add(Math.ceil((now + sessionWindowMs) / resolutionMs) * resolutionMs, 1);
  }

  /** Forgets the latest start: its stream never reached the upstream. */
  giveBack(): void {
    if (this.#made.removeLast()) this.#tokens = Math.min(this.burst, this.#tokens + 1);
  }

  /** Milliseconds from `now` until one more start fits; Infinity when the quota is 0. */
  waitMs(now: number): number {
    if (this.#quota <= 0) return Number.POSITIVE_INFINITY;
    const token = Math.max(0, Math.ceil(((1 - this.#refill(now)) * sessionWindowMs) / this.#quota));
    let over = this.count(now) - this.#quota;
    if (over < 0) return token;
    // The starts leave in time order, the run's own and the held ones merged.
    const made = this.#made;
    const held = this.#held;
    let i = 0;
    let j = 0;
    while (i < made.size || j < held.size) {
      const a = made.entry(i);
      const b = held.entry(j);
      const entry = (b === undefined || (a !== undefined && a.at <= b.at) ? made.entry(i++) : held.entry(j++)) as Entry;
      over -= entry.count;
      if (over < 0) return Math.max(entry.at - now, token);
    }
    return token;
  }

  /**
   * Puts a new quota in force. Starts already made stay in the window: a lowered quota
   * admits nothing until the pod is under it. Tokens in hand carry over, up to the new burst.
   */
  update(quota: number, now: number): void {
    this.#refill(now);
    this.#quota = Math.max(0, quota);
    this.#tokens = Math.min(this.#tokens, this.burst);
  }

  /** Counts `count` starts that leave the window `inMs` from `now`: starts an earlier run may have made. */
  hold(count: number, inMs: number, now: number): void {
    if (count <= 0) return;
    this.#held.add(Math.ceil((now + Math.min(inMs, sessionWindowMs)) / resolutionMs) * resolutionMs, count);
  }

  /**
   * The starts inside the window by the second in which they leave it, for the lease's
   * status: entry j counts those that leave within (j, j + 1] s. Trailing zeros are left out.
   */
  report(now: number): number[] {
    const slots = this.#made.report(now);
    this.#held.report(now, slots);
    return slots;
  }

  /** The part of `report` held for an earlier run, laid out the same way. */
  reportHeld(now: number): number[] {
    return this.#held.report(now);
  }

  /** Tokens in hand at `now`. */
  #refill(now: number): number {
    if (now > this.#tokensAt) {
      if (Number.isFinite(this.#tokensAt)) {
        this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#tokensAt) * this.#quota) / sessionWindowMs);
      }
      this.#tokensAt = now;
    }
    return this.#tokens;
  }
}

interface Entry {
  at: number;
  count: number;
}

/** Starts by when they leave the window, ascending and merged per instant; memory stays bounded. */
class Leaves {
  #leaves: Entry[] = [];
  #head = 0;
  #count = 0;

  count(now: number): number {
    this.#expire(now);
    return this.#count;
  }

  /** Entries still in the window (read after `count` at the same instant), ascending. */
  get size(): number {
    return this.#leaves.length - this.#head;
  }

  entry(i: number): Entry | undefined {
    return i < this.size ? this.#leaves[this.#head + i] : undefined;
  }

  add(at: number, count: number): void {
    this.#count += count;
    // Mostly appended in order; a hold may fall in between.
    let i = this.#leaves.length;
    while (i > this.#head && (this.#leaves[i - 1] as Entry).at > at) i -= 1;
    const before = this.#leaves[i - 1];
    if (i > this.#head && before?.at === at) before.count += count;
    else this.#leaves.splice(i, 0, { at, count });
  }

  /** Forgets one of the latest entry's starts; false when there is none. */
  removeLast(): boolean {
    const last = this.#leaves.at(-1);
    if (!last || this.#leaves.length <= this.#head) return false;
    last.count -= 1;
    this.#count -= 1;
    if (last.count === 0) this.#leaves.pop();
    return true;
  }

  /**
   * Adds the starts still in the window at `now` to `slots`, by the second in which they
   * leave. None leaves later than a window from now: the 100 ms a leave is rounded up to
   * is storage, not window, so the last slot takes it.
   */
  report(now: number, slots: number[] = []): number[] {
    this.#expire(now);
    for (let i = this.#head; i < this.#leaves.length; i++) {
      const entry = this.#leaves[i] as Entry;
      const slot = Math.min(lastSlot, Math.max(0, Math.ceil((entry.at - now) / sessionWindowSlotMs) - 1));
      while (slots.length <= slot) slots.push(0);
      slots[slot] = (slots[slot] as number) + entry.count;
    }
    return slots;
  }

  #expire(now: number): void {
    while (this.#head < this.#leaves.length && (this.#leaves[this.#head] as Entry).at <= now) {
      this.#count -= (this.#leaves[this.#head] as Entry).count;
      this.#head += 1;
    }
    if (this.#head > 64 && this.#head * 2 > this.#leaves.length) {
      this.#leaves.splice(0, this.#head);
      this.#head = 0;
    }
  }
}

function burstOf(quota: number): number {
  return Math.max(1, Math.ceil(quota / 10));
}
