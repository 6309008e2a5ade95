import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SessionModel } from './session-model.js';

const autoscale = {
  scaleUpAtPercent: 70,
  stepPercent: 10,
  intervalSeconds: 60,
  scaleDownBelowPercent: 50,
  maxPerMinute: 130,
};

describe('the new-session model', () => {
  it('is the declared rate without autoscale', () => {
    const model = new SessionModel({ perMinute: 100 }, 0);
    assert.equal(model.observe(1000, 10_000), 100);
  });

  it('rises one interval later than the provider may, step by step, up to the ceiling', () => {
    const model = new SessionModel({ perMinute: 100, autoscale }, 0);
    assert.equal(model.observe(80, 0), 100);
    assert.equal(model.observe(80, 60_000), 100, 'the provider may step now; the model waits an interval more');
    assert.equal(model.observe(80, 120_000), 110);
    assert.equal(model.observe(90, 180_000), 110);
    assert.equal(model.observe(90, 240_000), 121);
    assert.equal(model.observe(100, 360_000), 130, 'never past maxPerMinute');
  });

  it('falls back to the declared rate at once when use drops', () => {
    const model = new SessionModel({ perMinute: 100, autoscale }, 0);
    model.observe(80, 0);
    model.observe(80, 120_000);
    assert.equal(model.observe(10, 121_000), 100);
  });
});
