import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Candidate, LeaseBook, type ObservedLease } from './lease-book.js';

const timings = {
  staleAfterMs: 3500,
  releaseDelayMs: 3000,
  staleGoneHoldMs: 600_000,
  demandHalfLifeMs: 2000,
  sessionWindowMs: 0,
};
const wall = Date.UTC(2026, 0, 1);

function lease(status: ObservedLease['status'] | undefined, deletingSince?: number): ObservedLease {
  return {
    name: 'l',
    spec: { concurrency: 4 },
    epoch: 2,
    ...(status && { status }),
    statusFingerprint: JSON.stringify(status ?? null),
    ...(deletingSince !== undefined && { deletingSince }),
  };
}
const gone = (l: ObservedLease): Candidate => ({ name: 'l', phase: 'gone', lease: l });

describe('the lease book: pods that went', () => {
  it('holds a pod that went while fresh for the release delay only', () => {
    const book = new LeaseBook(timings);
    const status = { observedEpoch: 2, inUse: 3, heartbeatTime: new Date(wall).toISOString() };
    book.members([{ name: 'l', phase: 'active', lease: lease(status) }], 0, wall);
    book.members([gone(lease(status))], 1000, wall + 1000);
    assert.deepEqual(book.releasable(3999), []);
    assert.deepEqual(book.releasable(4000), ['l']);
  });

  it('holds a pod that went while stale for the stale-gone hold too', () => {
    const book = new LeaseBook(timings);
    const status = { observedEpoch: 2, inUse: 3, heartbeatTime: new Date(wall).toISOString() };
    book.members([{ name: 'l', phase: 'active', lease: lease(status) }], 0, wall);
    book.members([gone(lease(status))], 4000, wall + 4000);
    assert.deepEqual(book.releasable(4000 + 3000 + 599_999), []);
    assert.deepEqual(book.staleGoneHolds(), [{ name: 'l', releaseAt: 4000 + 3000 + 600_000 }]);
  });

  it('never holds long a lease without status: its pod never admitted a stream', () => {
    const book = new LeaseBook(timings);
    book.members([{ name: 'l', phase: 'active', lease: lease(undefined) }], 0, wall);
    book.members([gone(lease(undefined))], 60_000, wall + 60_000);
    assert.deepEqual(book.releasable(63_000), ['l']);
  });

  it('as a new book, judges a vanished pod by its last heartbeat against the start of its deletion', () => {
    const status = (heartbeatAt: number) => ({
      observedEpoch: 2,
      inUse: 3,
      heartbeatTime: new Date(heartbeatAt).toISOString(),
    });
    // The heartbeat came a second before the garbage collector began deleting the lease: fresh.
    const fresh = new LeaseBook(timings);
    fresh.members([gone(lease(status(wall), wall + 1000))], 0, wall + 30_000);
    assert.deepEqual(fresh.releasable(3000), ['l']);
    // Silent for longer than a stale-after when it went: it may still be streaming somewhere.
    const silent = new LeaseBook(timings);
    silent.members([gone(lease(status(wall), wall + 10_000))], 0, wall + 30_000);
    assert.deepEqual(silent.releasable(3000), []);
    assert.equal(silent.staleGoneHolds().length, 1);
    // Not deleted yet (the pod went a moment ago): now is the measure.
    const recent = new LeaseBook(timings);
    recent.members([gone(lease(status(wall)))], 0, wall + 1000);
    assert.deepEqual(recent.releasable(3000), ['l']);
  });
});

describe('the lease book: new-session windows', () => {
  it('counts reported starts as held until the end of their second, counted from when it saw the report', () => {
    const book = new LeaseBook(timings);
    const status = { observedEpoch: 2, inUse: 0, sessionWindow: [2, 0, 3] };
    const at = (now: number) =>
      book.members([{ name: 'l', phase: 'active', lease: lease(status) }], now, wall + now)[0];
    assert.equal(at(5000)?.sessionsHeld, 5, 'first sight');
    assert.equal(at(5999)?.sessionsHeld, 5);
    assert.equal(at(6000)?.sessionsHeld, 3);
    assert.equal(book.nextWindowExit(6000), 2000);
    assert.equal(at(8000)?.sessionsHeld, 0);
    assert.equal(book.nextWindowExit(8000), undefined);
  });

  it('counts as surely seen upstream only starts the sidecar made, from a report it saw arrive', () => {
    const book = new LeaseBook(timings);
    const window = [...Array(40).fill(0), 4];
    const at = (now: number, status: ObservedLease['status']) =>
      book.members([{ name: 'l', phase: 'active', lease: lease(status) }], now, wall + now)[0];
    const first = { observedEpoch: 2, inUse: 0, sessionWindow: window, heartbeatTime: 'a' };
    assert.equal(at(0, first)?.sessionsCounted, 0, 'found at first sight: the report may be old');
    assert.equal(at(0, first)?.sessionsHeld, 4);
    const next = { ...first, heartbeatTime: 'b', sessionWindowInherited: [...Array(40).fill(0), 3] };
    assert.equal(at(1000, next)?.sessionsCounted, 1, 'three of the four are held for an earlier run');
    assert.equal(at(1000, next)?.sessionsHeld, 4);
    assert.equal(at(1000, { ...next, heartbeatTime: 'c', sessionWindowInherited: [] })?.sessionsCounted, 4);
    assert.equal(
      at(38_000, { ...next, heartbeatTime: 'c', sessionWindowInherited: [] })?.sessionsCounted,
      0,
      'may have left',
    );
  });

  it('keeps the lease of a pod that went for a whole window when the budget limits new sessions', () => {
    const book = new LeaseBook({ ...timings, sessionWindowMs: 61_000 });
    const status = { observedEpoch: 2, inUse: 0, heartbeatTime: new Date(wall).toISOString() };
    book.members([{ name: 'l', phase: 'active', lease: lease(status) }], 0, wall);
    book.members([gone(lease(status))], 1000, wall + 1000);
    assert.deepEqual(book.releasable(1000 + 60_999), []);
    assert.deepEqual(book.releasable(1000 + 61_000), ['l']);
  });
});
