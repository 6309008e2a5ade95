/**
 * The referee's books, on a clock the test moves: the exact peak, time above the limit,
 * slots held after unclean ends, and the entries tests prove orderings from.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ProjectLedger } from './ledger.js';

describe('ProjectLedger', () => {
  test('tracks the exact peak and each acceptance above the limit', () => {
    const ledger = new ProjectLedger({ limit: 2, enforce: false, releaseDelayMs: 1000 });
    for (let i = 0; i < 4; i++) ledger.opened(i);
    ledger.closed(10, true);
    ledger.closed(20, true);
    const snapshot = ledger.snapshot(30);
    assert.equal(snapshot.peak, 4);
    assert.equal(snapshot.overLimitMoments, 2);
    assert.equal(snapshot.overLimitMs, 18, 'from the third acceptance at 2 to the close at 20');
    assert.equal(snapshot.inUse, 2);
  });

  test('holds a slot after an unclean end until the release delay has passed', () => {
    const ledger = new ProjectLedger({ limit: 1, enforce: true, releaseDelayMs: 1000 });
    ledger.opened(0);
    ledger.closed(100, false);
    assert.equal(ledger.hasRoom(1099), false);
    assert.equal(ledger.inUse(1099), 1);
    assert.equal(ledger.hasRoom(1100), true);
    assert.equal(ledger.snapshot(1100).uncleanEnds, 1);
  });

  test('records each acceptance with its stream and each end with how long its slot counts', () => {
    const ledger = new ProjectLedger({ limit: 2, enforce: false, releaseDelayMs: 1000 });
    ledger.opened(0, { requestId: 'a', tags: ['pod-a'] });
    ledger.opened(5, { requestId: 'b', tags: [] });
    ledger.closed(10, false);
    ledger.closed(20, true);
    assert.deepEqual(ledger.entries(), [
      { at: 0, kind: 'accepted', requestId: 'a', tags: ['pod-a'], inUse: 1 },
      { at: 5, kind: 'accepted', requestId: 'b', tags: [], inUse: 2 },
      { at: 10, kind: 'ended', clean: false, countedUntil: 1010, inUse: 2 },
      { at: 20, kind: 'ended', clean: true, countedUntil: 20, inUse: 1 },
    ]);
    ledger.reset(30);
    assert.deepEqual(ledger.entries(), [], 'a reset starts the entries afresh');
  });

  test('keeps its entries bounded, counting what it dropped', () => {
    const ledger = new ProjectLedger({ limit: 100_000, enforce: false, releaseDelayMs: 0 });
    for (let i = 0; i < 50_001; i++) ledger.opened(i);
    const entries = ledger.entries();
    assert.ok(entries.length <= 50_000);
    assert.equal(ledger.droppedEntries + entries.length, 50_001);
    assert.equal(entries.at(-1)?.at, 50_000, 'the newest entries are kept');
  });
});
