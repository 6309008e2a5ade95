import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SessionModel } from './session-model.js';

const autoscale = {
  scaleUpAtPercent: 70,
  stepPercent: 10,
  intervalSeconds: 20,
  scaleDownBelowPercent: 50,
  maxPerMinute: 200,
};

describe('the autoscale model', () => {
  it('follows a provider held at its limit, whatever its phase, at most one interval behind', () => {
    const model = new SessionModel({ perMinute: 100, autoscale }, 0);
    const seen: number[] = [];
    for (let t = 0; t <= 80_000; t += 1000) {
      model.observe(model.perMinute, t);
      if (t % 20_000 === 19_000) seen.push(model.perMinute);
      if (t % 20_000 === 0 && t > 0) seen.push(model.perMinute);
    }
    // Just before each 20 s the provider may not have stepped yet (its phase may be the
    // last one); by then every phase has, on use at the limit: 110, 121, 133, 146 rounding
    // down, the least it can be.
    assert.deepEqual(seen, [100, 110, 110, 121, 121, 133, 133, 146]);
    assert.ok(model.ceiling >= 161);
  });

  it('is unsure of the use before its first observation', () => {
    const model = new SessionModel({ perMinute: 100, autoscale }, 0);
    model.observe(0, 5000);
    assert.ok(model.ceiling > 100, 'the provider may have stepped up on use not seen');
    assert.ok(model.perMinute <= 100);
  });

  it('falls when the highest limit the provider may hold would fall: 26 starts against 48 and 52', () => {
    // The model holds 48 to 52 (one step apart). Reported 26, the use is at least 24 with
    // the model's slack: 50 % of 48, so a limit of 48 holds, but 46 % of 52, so a limit of
    // 52 steps down to 46. The model must go to 46 or below as soon as the step may come.
    const model = new SessionModel({ perMinute: 40, autoscale }, 0, { low: 48, high: 48 });
    assert.ok(model.ceiling >= 52);
    model.observe(26, 1000);
    assert.ok(model.perMinute <= 46, `modelled ${model.perMinute}`);
  });

  it('does not climb on use it may have overstated', () => {
    const model = new SessionModel({ perMinute: 100, autoscale }, 0);
    for (let t = 1000; t <= 120_000; t += 1000) model.observe(72, t);
    assert.equal(model.perMinute, 100, '72 is within 5 % of the threshold');
  });

  it('never passes maxPerMinute, and falls at once when use drops', () => {
    const model = new SessionModel({ perMinute: 100, autoscale: { ...autoscale, maxPerMinute: 115 } }, 0);
    for (let t = 1000; t <= 200_000; t += 1000) model.observe(model.perMinute, t);
    assert.equal(model.perMinute, 115);
    assert.equal(model.ceiling, 115);
    model.observe(10, 201_000);
    assert.ok(model.perMinute < 115, 'any limit the provider may hold would step down');
    for (let t = 202_000; t <= 400_000; t += 1000) model.observe(10, t);
    assert.equal(model.perMinute, 100, 'never below the default');
    assert.equal(model.ceiling, 100, 'the ceiling follows once every limit surely fell');
  });

  it('falls the moment use drops, inside a phase whose window has not closed yet', () => {
    // Observed every 100 ms, the interval's phases are 500 ms apart: 100_200 ms is inside
    // one phase's window. The provider may step down at that very moment, so the model
    // must not wait for the window to close.
    const model = new SessionModel({ perMinute: 100, autoscale }, 0);
    for (let t = 100; t <= 100_100; t += 100) model.observe(model.perMinute, t);
    const before = model.perMinute;
    assert.ok(before > 110, `climbed to ${before}`);
    model.observe(10, 100_200);
    assert.ok(model.perMinute < before, `still ${model.perMinute}`);
  });

  it('without autoscale is the budget', () => {
    const model = new SessionModel({ perMinute: 30 }, 0);
    assert.equal(model.observe(1000, 1000), 30);
  });
});
