import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FakeClock } from '../test/support/fake-clock.js';
import { Admission, AdmissionRejected, BudgetGate, type Grant, type StreamSlot } from './admission.js';

function gate(clock: FakeClock, name: string, grant: Grant, settings: Partial<BudgetGate['settings']> = {}) {
  return new BudgetGate(
    { name, queueTimeoutMs: 1000, maxQueueLength: 10, releaseDelayMs: 5000, ...settings },
    grant,
    clock.now(),
  );
}

/** The outcome of a promise so far, without waiting for it. */
function track<T>(promise: Promise<T>) {
  const state: { value?: T; error?: unknown; settled: boolean } = { settled: false };
  promise.then(
    (value) => Object.assign(state, { value, settled: true }),
    (error) => Object.assign(state, { error, settled: true }),
  );
  return state;
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('Admission', () => {
  test('admits up to the grant, then queues, and admits the first waiter when a slot frees', async () => {
    const clock = new FakeClock();
    const admission = new Admission(clock);
    const flux = gate(clock, 'flux', { concurrency: 2 });
    const a = await admission.admit([flux]);
    await admission.admit([flux]);
    const first = track(admission.admit([flux]));
    const second = track(admission.admit([flux]));
    await settle();
    assert.equal(first.settled, false);
    assert.equal(admission.queued, 2);
    a.release(true);
    await settle();
    assert.ok(first.value, 'the first waiter got the slot');
    assert.equal(second.settled, false, 'the second still waits');
    assert.equal(flux.inUse(clock.now()), 2);
  });

  test('tells a slot how long it waited in the queue, and nothing when it did not', async () => {
    const clock = new FakeClock();
    const admission = new Admission(clock);
    const flux = gate(clock, 'flux', { concurrency: 1 });
    const a = await admission.admit([flux]);
    assert.equal(a.queuedMs, undefined);
    const waiting = admission.admit([flux]);
    clock.advance(250);
    a.release(true);
    assert.equal((await waiting).queuedMs, 250);
  });

  test('rejects a waiter with the blocking reason when its queue time runs out', async () => {
    const clock = new FakeClock();
    const admission = new Admission(clock);
    const flux = gate(clock, 'flux', { concurrency: 1 });
    await admission.admit([flux]);
    const waiting = track(admission.admit([flux]));
    clock.advance(999);
    await settle();
    assert.equal(waiting.settled, false);
    clock.advance(1);
    await settle();
    assert.ok(waiting.error instanceof AdmissionRejected);
    assert.equal(waiting.error.reason, 'concurrency');
    assert.equal(waiting.error.waitedMs, 1000);
    assert.equal(flux.rejected.concurrency, 1);
    assert.equal(flux.waiting, 0);
  });

  test('rejects at once when queueing is off or the queue is full', async () => {
    const clock = new FakeClock();
    const admission = new Admission(clock);
    const noQueue = gate(clock, 'a', { concurrency: 0 }, { queueTimeoutMs: 0 });
    await assert.rejects(
      admission.admit([noQueue]),
      (e: unknown) => e instanceof AdmissionRejected && e.reason === 'no-grant',
    );
    const short = gate(clock, 'b', { concurrency: 1 }, { maxQueueLength: 1 });
    await admission.admit([short]);
    const queued = track(admission.admit([short]));
    await assert.rejects(
      admission.admit([short]),
      (e: unknown) => e instanceof AdmissionRejected && e.reason === 'concurrency',
    );
    assert.equal(queued.settled, false);
  });

  test('admits only when every budget that covers the stream has room', async () => {
    const clock = new FakeClock();
    const admission = new Admission(clock);
    const project = gate(clock, 'project', { concurrency: 2 });
    const model = gate(clock, 'model', { concurrency: 1 });
    const held = await admission.admit([project, model]);
    const blocked = track(admission.admit([project, model]));
    await settle();
    assert.equal(blocked.settled, false);
    // Another model's stream still fits the project budget.
    const other = await admission.admit([project]);
    assert.equal(project.inUse(clock.now()), 2);
    held.release(true);
    await settle();
    assert.ok(blocked.value, 'admitted into both budgets once the model budget had room');
    assert.equal(project.inUse(clock.now()), 2);
    assert.equal(model.inUse(clock.now()), 1);
    other.release(true);
  });

  test('hands freed room to waiters in arrival order', async () => {
    const clock = new FakeClock();
    const admission = new Admission(clock);
    const flux = gate(clock, 'flux', { concurrency: 1 });
    const held = await admission.admit([flux]);
    const order: number[] = [];
    const waiters = [1, 2, 3].map((n) =>
      admission.admit([flux]).then((slot) => {
        order.push(n);
        return slot;
      }),
    );
    let slot = held;
    for (const waiter of waiters) {
      slot.release(true);
      slot = await waiter;
    }
    assert.deepEqual(order, [1, 2, 3]);
  });

  test('does not let a waiter held up by one budget keep another idle', async () => {
    const clock = new FakeClock();
    const admission = new Admission(clock);
    const shared = gate(clock, 'shared', { concurrency: 1 });
    const other = gate(clock, 'other', { concurrency: 1 });
    const b = await admission.admit([other]);
    const first = track(admission.admit([shared, other]));
    const second = await admission.admit([shared]);
    assert.equal(first.settled, false, 'still blocked by other');
    b.release(true);
    second.release(true);
    await settle();
    assert.ok(first.value);
  });

  test('holds a slot after an unclean end for the release delay, then admits', async () => {
    const clock = new FakeClock();
    const admission = new Admission(clock);
    const flux = gate(clock, 'flux', { concurrency: 1 }, { queueTimeoutMs: 10_000 });
    const slot = await admission.admit([flux]);
    slot.release(false);
    assert.equal(flux.stale(clock.now()), 1);
    const waiting = track(admission.admit([flux]));
    clock.advance(4999);
    await settle();
    assert.equal(waiting.settled, false);
    clock.advance(1);
    await settle();
    assert.ok(waiting.value, 'admitted when the held slot expired');
  });

  test('counts a second release instead of freeing twice', async () => {
    const clock = new FakeClock();
    let reported = 0;
    const admission = new Admission(clock, { doubleRelease: () => reported++ });
    const flux = gate(clock, 'flux', { concurrency: 2 });
    const slot: StreamSlot = await admission.admit([flux]);
    await admission.admit([flux]);
    assert.equal(slot.release(true), true);
    assert.equal(slot.release(false), false);
    assert.equal(flux.inUse(clock.now()), 1);
    assert.equal(admission.doubleReleases, 1);
    assert.equal(reported, 1);
  });

  test('waits for a start to leave the 61 s window and says how long to wait when rejecting', async () => {
    const clock = new FakeClock();
    const admission = new Admission(clock);
    const rate = gate(clock, 'rate', { concurrency: 10, newSessionsPerMinute: 2 }, { queueTimeoutMs: 500 });
    await admission.admit([rate]);
    clock.advance(31_000);
    await admission.admit([rate]);
    const waiting = track(admission.admit([rate]));
    clock.advance(500);
    await settle();
    assert.ok(waiting.error instanceof AdmissionRejected);
    assert.equal(waiting.error.reason, 'session-rate');
    assert.equal(waiting.error.retryAfterSeconds, 30, 'the first start leaves the window 61 s after it was made');
    const patient = gate(clock, 'patient', { concurrency: 10, newSessionsPerMinute: 1 }, { queueTimeoutMs: 70_000 });
    await admission.admit([patient]);
    const later = track(admission.admit([patient]));
    clock.advance(60_999);
    await settle();
    assert.equal(later.settled, false, 'still inside the window');
    clock.advance(1);
    await settle();
    assert.ok(later.value, 'admitted when the start left the window');
  });

  test('lowering the grant ends nothing and admits nobody until the pod is under it', async () => {
    const clock = new FakeClock();
    const admission = new Admission(clock);
    const flux = gate(clock, 'flux', { concurrency: 3 });
    const slots = [await admission.admit([flux]), await admission.admit([flux]), await admission.admit([flux])];
    flux.updateGrant({ concurrency: 1 }, clock.now());
    const waiting = track(admission.admit([flux]));
    slots[0]?.release(true);
    slots[1]?.release(true);
    await settle();
    assert.equal(waiting.settled, false, 'one stream is open and the grant is one');
    slots[2]?.release(true);
    await settle();
    assert.ok(waiting.value);
  });

  test('takes a waiter whose client left out of the queue, uncounted', async () => {
    const clock = new FakeClock();
    const admission = new Admission(clock);
    const flux = gate(clock, 'flux', { concurrency: 1 });
    const held = await admission.admit([flux]);
    const gone = new AbortController();
    const waiting = track(admission.admit([flux], gone.signal));
    const next = track(admission.admit([flux]));
    gone.abort(new Error('client left'));
    await settle();
    assert.equal((waiting.error as Error).message, 'client left');
    assert.equal(flux.waiting, 1);
    assert.equal(flux.rejected.concurrency, 0, 'not a rejection');
    held.release(true);
    await settle();
    assert.ok(next.value, 'the next waiter moved up');
  });

  test('forgets the start of a stream cancelled before it reached the upstream', async () => {
    const clock = new FakeClock();
    const admission = new Admission(clock);
    const rate = gate(clock, 'rate', { concurrency: 10, newSessionsPerMinute: 1 });
    const slot = await admission.admit([rate]);
    assert.equal(rate.blocker(clock.now()), 'session-rate');
    assert.equal(slot.cancel(), true);
    assert.equal(rate.blocker(clock.now()), undefined);
    assert.equal(rate.inUse(clock.now()), 0);
  });

  test('rejects waiters and newcomers once closed', async () => {
    const clock = new FakeClock();
    const admission = new Admission(clock);
    const flux = gate(clock, 'flux', { concurrency: 1 });
    await admission.admit([flux]);
    const waiting = track(admission.admit([flux]));
    const stopping = new Error('shutting down');
    admission.close(stopping);
    await settle();
    assert.equal(waiting.error, stopping);
    await assert.rejects(admission.admit([flux]), stopping);
    assert.equal(flux.waiting, 0);
  });
});

describe('a restarted sidecar', () => {
  test('counts the starts its last run reported, and a whole quota more, as still in the window', () => {
    const clock = new FakeClock();
    const restarted = gate(clock, 'restarted', { concurrency: 0 });
    // The last run reported 3 starts leaving within 1 s and 2 within 30 s; its quota was 10.
    restarted.holdSessions(
      [3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
      10,
      clock.now(),
    );
    restarted.updateGrant({ concurrency: 10, newSessionsPerMinute: 10 }, clock.now());
    assert.equal(restarted.sessionsInWindow(clock.now()), 15);
    assert.equal(restarted.blocker(clock.now()), 'session-rate');
    clock.advance(1000);
    assert.equal(restarted.sessionsInWindow(clock.now()), 12, 'the reported ones leave as reported');
    clock.advance(29_000);
    assert.equal(restarted.sessionsInWindow(clock.now()), 10);
    assert.equal(restarted.blocker(clock.now()), 'session-rate', 'the run may have made its whole quota since');
    clock.advance(31_000);
    assert.equal(restarted.sessionsInWindow(clock.now()), 0, 'a whole window after the restart');
    assert.equal(restarted.blocker(clock.now()), undefined);
  });
});
