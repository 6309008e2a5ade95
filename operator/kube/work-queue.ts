/**
 * The controller's work queue, after client-go's: keys (namespace/name) are de-duplicated,
 * a key is never handed to two workers at once, and failures back off per key. Time and
 * timers are injected, so the queue is tested without sleeping.
 */

import { type Clock, systemClock } from '../../crds/api/clock.js';

export interface WorkQueueOptions {
  /** The first retry of a failing key waits this long; each further failure doubles it. */
  baseDelayMs?: number;
  /** The longest a failing key waits. */
  maxDelayMs?: number;
  clock?: Clock;
}

interface Waiting {
  readyAt: number;
  timer: unknown;
}

/** A de-duplicating keyed work queue with delayed and rate-limited adds. */
export class WorkQueue {
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #clock: Clock;
  /** Keys ready to be handed out, in order. Each is also in #dirty. */
  #queue: string[] = [];
  /** Keys that need processing: queued, or added again while being processed. */
  readonly #dirty = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #waiting = new Map<string, Waiting>();
  readonly #failures = new Map<string, number>();
  #getters: ((key: string | undefined) => void)[] = [];
  #shuttingDown = false;

  constructor(options: WorkQueueOptions = {}) {
    this.#baseDelayMs = options.baseDelayMs ?? 50;
    this.#maxDelayMs = options.maxDelayMs ?? 30_000;
    this.#clock = options.clock ?? systemClock;
  }

  /** Keys ready to be handed out (not those being processed or waiting for a delay). */
  get length(): number {
    return this.#queue.length;
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /**
   * Queues `key` unless it is queued already. A key being processed is queued again when
   * its worker calls `done`, so the change that caused this add is never lost.
   */
  add(key: string): void {
    if (this.#shuttingDown || this.#dirty.has(key)) return;
    this.#dirty.add(key);
    if (this.#processing.has(key)) return;
    this.#queue.push(key);
    this.#handOut();
  }

  /** Queues `key` after `ms`. When the key is already waiting, the earlier time wins. */
  addAfter(key: string, ms: number): void {
    if (this.#shuttingDown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const readyAt = this.#clock.now() + ms;
    const waiting = this.#waiting.get(key);
    if (waiting) {
      if (waiting.readyAt <= readyAt) return;
      this.#clock.clearTimer(waiting.timer);
    }
    const timer = this.#clock.setTimer(() => {
      this.#waiting.delete(key);
      this.add(key);
    }, ms);
    this.#waiting.set(key, { readyAt, timer });
  }

  /** Queues `key` after its own backoff, which doubles with each failure until `forget`. */
  addRateLimited(key: string): void {
    const failures = this.#failures.get(key) ?? 0;
    this.#failures.set(key, failures + 1);
    this.addAfter(key, this.backoffMs(failures));
  }

  /** The delay of a key's retry after `failures` earlier failures. */
  backoffMs(failures: number): number {
    return Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** failures);
  }

  /** Resets the key's backoff: call it when the key was processed successfully. */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  /** How many times in a row the key was added rate-limited since it was last forgotten. */
  requeues(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /**
   * The next key to process, waiting for one if none is ready; undefined once the queue
   * is shut down. The caller owns the key until it calls `done(key)`.
   */
  get(): Promise<string | undefined> {
    if (this.#shuttingDown) return Promise.resolve(undefined);
    const key = this.#take();
    if (key !== undefined) return Promise.resolve(key);
    return new Promise((resolve) => this.#getters.push(resolve));
  }

  /** Marks the key processed; if it was added meanwhile, it is queued again. */
  done(key: string): void {
    this.#processing.delete(key);
    if (this.#shuttingDown || !this.#dirty.has(key)) return;
    this.#queue.push(key);
    this.#handOut();
  }

  /**
   * Stops the queue: waiting and later `get` calls answer undefined, delayed adds are
   * dropped and new adds ignored. Keys being processed may still call `done`.
   */
  shutDown(): void {
    if (this.#shuttingDown) return;
    this.#shuttingDown = true;
    for (const { timer } of this.#waiting.values()) this.#clock.clearTimer(timer);
    this.#waiting.clear();
    this.#queue = [];
    this.#dirty.clear();
    const getters = this.#getters;
    this.#getters = [];
    for (const resolve of getters) resolve(undefined);
  }

  #take(): string | undefined {
    const key = this.#queue.shift();
    if (key === undefined) return undefined;
    this.#dirty.delete(key);
    this.#processing.add(key);
    return key;
  }

  #handOut(): void {
    while (this.#getters.length > 0 && this.#queue.length > 0) {
      const resolve = this.#getters.shift() as (key: string | undefined) => void;
      resolve(this.#take());
    }
  }
}

/** What a reconcile asks of the queue when it succeeds. */
export interface ReconcileResult {
  /** Reconcile the key again after this long, even if nothing changes (a poll or a timeout). */
  requeueAfterMs?: number;
}

export interface RunWorkersOptions {
  /** Told of each failed reconcile; the key is retried after its backoff. */
  onError?: (key: string, error: unknown, requeues: number) => void;
}

/**
 * Runs `count` workers that take keys from `queue` and reconcile them, with
 * controller-runtime's semantics: success forgets the key's backoff; `requeueAfterMs`
 * queues it again after that long; a thrown error retries it after its backoff.
 * Resolves once the queue is shut down and every worker has finished its key.
 */
export async function runWorkers(
  queue: WorkQueue,
  count: number,
  reconcile: (key: string) => Promise<ReconcileResult>,
  options: RunWorkersOptions = {},
): Promise<void> {
  const worker = async () => {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      try {
        const result = await reconcile(key);
        queue.forget(key);
        if (result.requeueAfterMs !== undefined) queue.addAfter(key, result.requeueAfterMs);
      } catch (error) {
        queue.addRateLimited(key);
        try {
          options.onError?.(key, error, queue.requeues(key));
        } catch {
          // A failing logger must not stop the worker.
        }
      } finally {
        queue.done(key);
      }
    }
  };
  await Promise.all(Array.from({ length: count }, worker));
}
