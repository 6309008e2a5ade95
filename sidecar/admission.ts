/**
 * Admission: a stream is charged to every budget that covers it and admitted only when
 * each has a concurrency slot under its grant and, with a new-session budget, room in
 * the pod's new-session window.
 * Otherwise it waits in a FIFO queue (bounded, with a timeout) or is rejected with the
 * reason that held it back. A slot is released exactly once; an unclean end keeps it
 * counted for the release delay. Time and timers are injected, so it is tested without
 * sleeping.
 */
import { type Clock, systemClock } from '../crds/api/clock.js';
import { sessionWindowMs, sessionWindowSlotMs } from '../crds/api/index.js';
import { SessionWindow } from './session-window.js';

/** Why a stream was not admitted; the reason header of the 429. */
export type RejectReason = 'concurrency' | 'session-rate' | 'no-grant';

/** What a pod may use of one budget. */
export interface Grant {
  concurrency: number;
  /** Starts allowed in any 61 s; absent when the budget has no new-session limit. */
  newSessionsPerMinute?: number;
}

export interface BudgetSettings {
  name: string;
  queueTimeoutMs: number;
  maxQueueLength: number;
  releaseDelayMs: number;
}

/** A stream refused admission. */
export class AdmissionRejected extends Error {
  readonly code = 'SLUICE_E_ADMISSION_REJECTED';

  constructor(
    readonly reason: RejectReason,
    readonly budget: string,
    readonly retryAfterSeconds: number,
    readonly waitedMs: number,
  ) {
    super(`Budget ${budget} has no room (${reason})`);
    this.name = 'AdmissionRejected';
  }
}

/** One budget as this pod enforces it. */
export class BudgetGate {
  readonly settings: BudgetSettings;
  #grant: Grant;
  /** Every start of the last window, kept whatever the grant: a later grant may limit them again. */
  readonly #window: SessionWindow;
  #open = 0;
  /** Release times of slots held after unclean ends, in order. */
  #stale: number[] = [];
  /** Streams waiting on this budget now. */
  waiting = 0;
  admitted = 0;
  readonly rejected: Record<RejectReason, number> = { concurrency: 0, 'session-rate': 0, 'no-grant': 0 };
  /** Streams the sidecar ended on its own (idle, missed pong, too long); counted by the proxy. */
  reaped = 0;
  /** Handshakes the upstream refused (any HTTP status, a timeout, unreachable); counted by the proxy. */
  upstreamRejected = 0;

  constructor(settings: BudgetSettings, grant: Grant, _now: number) {
    this.settings = settings;
    this.#grant = grant;
    this.#window = new SessionWindow(grant.newSessionsPerMinute ?? 0);
  }

  get name(): string {
    return this.settings.name;
  }

  get grant(): Grant {
    return this.#grant;
  }

  get open(): number {
    return this.#open;
  }

  /** Slots held after unclean ends at `now`. */
  stale(now: number): number {
    this.#expire(now);
    return this.#stale.length;
  }

  /** Open streams plus held slots: what the upstream may be counting. */
  inUse(now: number): number {
    return this.#open + this.stale(now);
  }

  /** What stands in the way of one more stream now, if anything. */
  blocker(now: number): RejectReason | undefined {
    if (this.#grant.concurrency <= 0) return 'no-grant';
    if (this.inUse(now) >= this.#grant.concurrency) return 'concurrency';
    if (this.#grant.newSessionsPerMinute !== undefined && !this.#window.allows(now)) return 'session-rate';
    return undefined;
  }

  /** When something that blocks now may clear by itself (a held slot expiring, a start leaving the window). */
  nextChange(now: number): number | undefined {
    const times: number[] = [];
    this.#expire(now);
    if (this.#stale.length > 0) times.push(this.#stale[0] as number);
    const wait = this.#grant.newSessionsPerMinute === undefined ? undefined : this.#window.waitMs(now);
    if (wait !== undefined && wait > 0 && Number.isFinite(wait)) times.push(now + wait);
    return times.length > 0 ? Math.min(...times) : undefined;
  }

  /** Seconds a rejected client should wait before trying again. */
  retryAfterSeconds(reason: RejectReason, now: number): number {
    if (reason === 'session-rate') {
      const wait = this.#window.waitMs(now);
      return Number.isFinite(wait) ? Math.max(1, Math.ceil(wait / 1000)) : 60;
    }
    const next = this.nextChange(now);
    return next === undefined ? 1 : Math.max(1, Math.ceil((next - now) / 1000));
  }

  take(now: number): void {
    this.#open += 1;
    this.admitted += 1;
    this.#window.take(now);
  }

  release(now: number, clean: boolean): void {
    this.#open -= 1;
    if (!clean) this.#stale.push(now + this.settings.releaseDelayMs);
  }

  /** Forgets the start of a stream that never reached the upstream. */
  giveBackStart(): void {
    this.#window.giveBack();
  }

  /** Starts inside the pod's new-session window now (61 s). */
  sessionsInWindow(now: number): number {
    return this.#window.count(now);
  }

  /** The window's starts by the second in which they leave it, as `status.sessionWindow` carries them. */
  sessionWindow(now: number): number[] {
    return this.#window.report(now);
  }

  /** The part of `sessionWindow` held for an earlier run, as `status.sessionWindowInherited` carries it. */
  sessionWindowInherited(now: number): number[] {
    return this.#window.reportHeld(now);
  }

  /** Holds `count` slots for the release delay: streams a previous run of the sidecar may have left upstream. */
  holdStale(count: number, now: number): void {
    for (let i = 0; i < count; i++) this.#stale.push(now + this.settings.releaseDelayMs);
  }

  /**
   * Counts the starts a previous run of the sidecar may have made as still inside the
   * window: those it last reported (`reported`, as in `status.sessionWindow`), each until
   * the end of its second counted from now, and a whole `quota` more for a whole window:
   * how long ago that report was written is not known, so the run may have made its full
   * quota since, just before it died.
   */
  holdSessions(reported: readonly number[] | undefined, quota: number, now: number): void {
    (reported ?? []).forEach((count, j) => {
      this.#window.hold(count, (j + 1) * sessionWindowSlotMs, now);
    });
    this.#window.hold(quota, sessionWindowMs, now);
  }

  /** Puts a new grant in force. Lowering it never ends a stream: new ones wait until the pod is under it. */
  updateGrant(grant: Grant, now: number): void {
    this.#grant = grant;
    this.#window.update(grant.newSessionsPerMinute ?? 0, now);
  }

  #expire(now: number): void {
    while (this.#stale.length > 0 && (this.#stale[0] as number) <= now) this.#stale.shift();
  }
}

/** The budgets one admitted stream holds; released exactly once. */
export class StreamSlot {
  readonly budgets: readonly BudgetGate[];
  /** How long the stream waited in the queue for this slot; undefined when it was admitted at once. */
  queuedMs: number | undefined;
  #released = false;
  readonly #onRelease: (slot: StreamSlot, clean: boolean) => void;
  readonly #onDoubleRelease: () => void;

  constructor(
    budgets: readonly BudgetGate[],
    onRelease: (slot: StreamSlot, clean: boolean) => void,
    onDoubleRelease: () => void,
  ) {
    this.budgets = budgets;
    this.#onRelease = onRelease;
    this.#onDoubleRelease = onDoubleRelease;
  }

  get released(): boolean {
    return this.#released;
  }

  /** Frees the slot (clean) or holds it for the release delay (unclean). A second call is counted, not obeyed. */
  release(clean: boolean): boolean {
    if (this.#released) {
      this.#onDoubleRelease();
      return false;
    }
    this.#released = true;
    this.#onRelease(this, clean);
    return true;
  }

  /** Frees the slot of a stream that never reached the upstream, and forgets its start. */
  cancel(): boolean {
    if (!this.release(true)) return false;
    for (const budget of this.budgets) budget.giveBackStart();
    return true;
  }
}

interface Waiter {
  budgets: readonly BudgetGate[];
  enqueuedAt: number;
  resolve(slot: StreamSlot): void;
  reject(error: Error): void;
  timer: unknown;
}

export interface AdmissionEvents {
  /** A second release of one slot: a bug, counted so that it shows. */
  doubleRelease?(): void;
}

/** Admits streams against their budgets, in FIFO order per budget. */
export class Admission {
  readonly #clock: Clock;
  readonly #events: AdmissionEvents;
  #queue: Waiter[] = [];
  #wakeAt: number | undefined;
  #wakeTimer: unknown;
  #closedReason: Error | undefined;
  doubleReleases = 0;

  constructor(clock: Clock = systemClock, events: AdmissionEvents = {}) {
    this.#clock = clock;
    this.#events = events;
  }

  get queued(): number {
    return this.#queue.length;
  }

  /**
   * Resolves with a slot in every budget, or rejects with AdmissionRejected. An aborted
   * `signal` takes a waiting stream out of the queue (rejecting with the signal's reason),
   * uncounted: its client has left.
   */
  admit(budgets: readonly BudgetGate[], signal?: AbortSignal): Promise<StreamSlot> {
    const now = this.#clock.now();
    if (this.#closedReason) return Promise.reject(this.#closedReason);
    // Room is handed to waiters the moment it appears, so room now means nobody waits for it.
    const blocked = this.#firstBlocker(budgets, now);
    if (!blocked) return Promise.resolve(this.#take(budgets, now));

    const timeoutMs = Math.min(...budgets.map((b) => b.settings.queueTimeoutMs));
    const full = budgets.find((b) => b.waiting >= b.settings.maxQueueLength);
    if (timeoutMs <= 0 || full) {
      const [budget, reason] = blocked ?? [full as BudgetGate, 'concurrency' as RejectReason];
      return Promise.reject(this.#rejection(budget, reason, now, 0));
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<StreamSlot>((resolve, reject) => {
      const waiter: Waiter = { budgets, enqueuedAt: now, resolve, reject, timer: undefined };
      waiter.timer = this.#clock.setTimer(() => this.#expire(waiter), timeoutMs);
      this.#queue.push(waiter);
      for (const budget of budgets) budget.waiting += 1;
      this.#schedule(now);
      signal?.addEventListener(
        'abort',
        () => {
          const index = this.#queue.indexOf(waiter);
          if (index === -1) return;
          this.#queue.splice(index, 1);
          this.#leave(waiter);
          reject(signal.reason);
          this.pump();
        },
        { once: true },
      );
    });
  }

  /**
   * Re-examines the queue in arrival order: call after anything that may make room (a
   * grant raised, a slot freed). Each waiter that fits takes its slots at once, so those
   * behind it see the room that is left: FIFO per budget. A waiter held up by one budget
   * does not hold the others idle.
   */
  pump(): void {
    const now = this.#clock.now();
    const remaining: Waiter[] = [];
    for (const waiter of this.#queue) {
      if (this.#firstBlocker(waiter.budgets, now)) {
        remaining.push(waiter);
        continue;
      }
      this.#leave(waiter);
      const slot = this.#take(waiter.budgets, now);
      slot.queuedMs = now - waiter.enqueuedAt;
      waiter.resolve(slot);
    }
    this.#queue = remaining;
    this.#schedule(now);
  }

  /** Rejects everything waiting and everything to come with `reason` (shutting down). */
  close(reason: Error): void {
    this.#closedReason = reason;
    for (const waiter of this.#queue) {
      this.#leave(waiter);
      waiter.reject(reason);
    }
    this.#queue = [];
    if (this.#wakeTimer !== undefined) this.#clock.clearTimer(this.#wakeTimer);
  }

  #take(budgets: readonly BudgetGate[], now: number): StreamSlot {
    for (const budget of budgets) budget.take(now);
    return new StreamSlot(
      budgets,
      (slot, clean) => {
        const at = this.#clock.now();
        for (const budget of slot.budgets) budget.release(at, clean);
        this.pump();
      },
      () => {
        this.doubleReleases += 1;
        this.#events.doubleRelease?.();
      },
    );
  }

  #firstBlocker(budgets: readonly BudgetGate[], now: number): [BudgetGate, RejectReason] | undefined {
    for (const budget of budgets) {
      const reason = budget.blocker(now);
      if (reason) return [budget, reason];
    }
    return undefined;
  }

  #rejection(budget: BudgetGate, reason: RejectReason, now: number, waitedMs: number): AdmissionRejected {
    budget.rejected[reason] += 1;
    return new AdmissionRejected(reason, budget.name, budget.retryAfterSeconds(reason, now), waitedMs);
  }

  #leave(waiter: Waiter): void {
    this.#clock.clearTimer(waiter.timer);
    for (const budget of waiter.budgets) budget.waiting -= 1;
  }

  #expire(waiter: Waiter): void {
    const index = this.#queue.indexOf(waiter);
    if (index === -1) return;
    this.#queue.splice(index, 1);
    const now = this.#clock.now();
    this.#leave(waiter);
    const [budget, reason] = this.#firstBlocker(waiter.budgets, now) ?? [
      waiter.budgets[0] as BudgetGate,
      'concurrency',
    ];
    waiter.reject(this.#rejection(budget, reason, now, now - waiter.enqueuedAt));
    // Its place in line may have been holding others back.
    this.pump();
  }

  /** Wakes the queue when a held slot expires or a start leaves a window. */
  #schedule(now: number): void {
    const times = this.#queue
      .flatMap((w) => w.budgets.map((b) => b.nextChange(now)))
      .filter((t): t is number => t !== undefined);
    const next = times.length > 0 ? Math.min(...times) : undefined;
    if (next === this.#wakeAt) return;
    if (this.#wakeTimer !== undefined) this.#clock.clearTimer(this.#wakeTimer);
    this.#wakeAt = next;
    this.#wakeTimer =
      next === undefined
        ? undefined
        : this.#clock.setTimer(
            () => {
              this.#wakeAt = undefined;
              this.#wakeTimer = undefined;
              this.pump();
            },
            Math.max(0, next - now),
          );
  }
}
