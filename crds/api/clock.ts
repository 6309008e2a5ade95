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
  // Whole milliseconds, never below 1: what setTimeout would make of the delay anyway, said once here.
  setTimer: (callback, ms) => setTimeout(callback, Math.max(1, Math.ceil(ms))),
  clearTimer: (timer) => clearTimeout(timer as NodeJS.Timeout),
};
