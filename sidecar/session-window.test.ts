import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startsStillInWindow } from '../crds/api/index.js';
import { SessionWindow } from './session-window.js';

describe('SessionWindow', () => {
  test('allows the quota in any 61 s, paced: a token every 61 s / quota, a tenth of the quota in hand', () => {
    const window = new SessionWindow(3);
    for (const at of [0, 21_000, 42_000]) {
      assert.equal(window.allows(at), true, `at ${at}`);
      window.take(at);
    }
    assert.equal(window.allows(42_000), false);
    assert.equal(window.waitMs(42_000), 20_334, 'the next token, after the first start left');
    assert.equal(window.allows(61_000), false, 'the first start left, but no token yet');
    assert.equal(window.allows(62_400), true);
  });

  test('a saturated pod starts its whole quota every window, spread over it', () => {
    const window = new SessionWindow(10);
    const starts: number[] = [];
    for (let at = 0; at < 610_000; at += 100) {
      if (window.allows(at)) {
        window.take(at);
        starts.push(at);
      }
    }
    assert.ok(starts.length >= 99 && starts.length <= 100, `${starts.length} starts in ten windows`);
    for (const from of starts) {
      assert.ok(starts.filter((t) => t >= from && t < from + 61_000).length <= 10, `window from ${from}`);
    }
  });

  test('a lowered quota admits nothing until the window holds less than it', () => {
    const window = new SessionWindow(5);
    for (let i = 0; i < 5; i++) window.take(i * 1000);
    window.update(2, 4000);
    assert.equal(window.allows(4000), false);
    assert.equal(window.allows(63_000), false, 'two are still in');
    assert.equal(window.allows(64_000), true, 'one is in');
  });

  test('gives back the latest start', () => {
    const window = new SessionWindow(1);
    window.take(0);
    assert.equal(window.allows(0), false);
    window.giveBack();
    assert.equal(window.allows(0), true);
    assert.equal(window.waitMs(0), 0);
  });

  test('a quota of 0 never admits', () => {
    assert.equal(new SessionWindow(0).waitMs(0), Number.POSITIVE_INFINITY);
  });

  test('reports its starts by the second they leave, so that a reader never sees them leave early', () => {
    const window = new SessionWindow(100);
    window.take(0);
    window.take(500);
    window.take(30_250);
    const report = window.report(31_000);
    assert.equal(report.length, 61);
    assert.equal(
      report.reduce((a, b) => a + b, 0),
      3,
    );
    // Read back as the operator does, from the moment of the report on.
    for (let elapsed = 0; elapsed <= 61_000; elapsed += 50) {
      assert.ok(startsStillInWindow(report, elapsed) >= window.count(31_000 + elapsed), `at +${elapsed} ms`);
    }
    assert.equal(startsStillInWindow(report, 61_000), 0);
  });

  test('never reports more entries than a window has seconds, whenever the start was made', () => {
    // Leaves are stored rounded up to 100 ms: a start at 1001 is kept until 62 100.
    const window = new SessionWindow(100);
    window.take(1001);
    window.hold(3, 61_000, 1001);
    const report = window.report(1001);
    assert.equal(report.length, 61, 'the status allows 61');
    assert.equal(report[60], 4);
    assert.equal(window.reportHeld(1001).length, 61);
  });

  test('holds starts of an earlier run for as long as it is told', () => {
    const window = new SessionWindow(4);
    window.hold(2, 5000, 0);
    window.hold(2, 120_000, 0);
    assert.equal(window.allows(0), false);
    assert.equal(window.count(5000), 2);
    assert.equal(window.count(61_000), 0, 'never longer than a window');
  });

  test("reports the held starts apart, so that a reader can tell the run's own", () => {
    const window = new SessionWindow(10);
    window.hold(3, 2500, 0);
    window.take(0);
    window.take(1000);
    assert.equal(
      window.report(0).reduce((a, b) => a + b, 0),
      5,
    );
    assert.deepEqual(window.reportHeld(0), [0, 0, 3]);
    assert.equal(
      window.report(3000).reduce((a, b) => a + b, 0),
      2,
    );
    assert.deepEqual(window.reportHeld(3000), [], 'left the window');
  });

  test('waits for the earliest start to leave, a held one or its own', () => {
    const window = new SessionWindow(3);
    window.hold(1, 30_000, 0);
    window.take(0);
    window.take(5000);
    assert.equal(window.count(5000), 3);
    assert.equal(window.waitMs(5000), 25_000, 'the held start leaves first');
    window.giveBack();
    assert.equal(window.count(5000), 2, 'the latest of its own is given back, not the held one');
    assert.equal(
      window.reportHeld(5000).reduce((a, b) => a + b, 0),
      1,
    );
  });
});
