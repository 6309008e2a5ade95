/**
 * Time and timers, injected wherever rules depend on them (admission, lease sync, the
 * operator's queue, informers and election), so tests drive them without sleeping.
 * `now()` is monotonic milliseconds.
 */
export interface Clock {
  now(): number;
  setTimer(callback: () => void, ms: number): unknown;
  clearTimer(timer: unknown): void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer: (callback, ms) => setTimeout(callback, ms),
  clearTimer: (timer) => clearTimeout(timer as NodeJS.Timeout),
};
