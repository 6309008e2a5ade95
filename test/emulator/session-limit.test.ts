import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SessionLimit } from './session-limit.js';

const autoscale = {
  scaleUpAtPercent: 70,
  stepPercent: 10,
  intervalSeconds: 60,
  scaleDownBelowPercent: 50,
  maxPerMinute: 130,
};

describe('SessionLimit', () => {
  test('counts starts over a sliding 60 s window', () => {
    const limit = new SessionLimit({ perMinute: 2 }, 0);
    limit.record(0);
    limit.record(30_000);
    assert.equal(limit.allows(59_999), false);
    assert.equal(limit.allows(60_000), true, 'the first start left the window');
    assert.equal(limit.startsInWindow(90_000), 0);
  });

  test('grows by a step each interval while use is at or above the threshold, up to the ceiling', () => {
    const limit = new SessionLimit({ perMinute: 100, autoscale }, 0);
    for (let i = 0; i < 70; i++) limit.record(1000 + i);
    assert.equal(limit.limit(59_999), 100, 'nothing before the first interval');
    assert.equal(limit.limit(60_000), 110);
    // The 70 starts have left the window by the next step: use 0 % shrinks it again.
    assert.equal(limit.limit(120_000), 100);
    const busy = new SessionLimit({ perMinute: 100, autoscale }, 0);
    // 100 starts a minute, evenly, for five minutes: always at or above 70 % until the ceiling.
    const t = 5 * 60_000;
    for (let at = 600; at <= t; at += 600) busy.record(at);
    assert.equal(busy.limit(t), 130, 'capped at maxPerMinute');
  });

  test('holds between the thresholds and never falls below the default', () => {
    const limit = new SessionLimit({ perMinute: 100, autoscale }, 0);
    for (let i = 0; i < 60; i++) limit.record(1000 + i);
    assert.equal(limit.limit(60_000), 100, '60 % is between 50 % and 70 %');
    assert.equal(limit.limit(600_000), 100, 'idle for minutes: still the default');
  });
});
