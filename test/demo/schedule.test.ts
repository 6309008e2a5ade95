import assert from 'node:assert/strict';
import { test } from 'node:test';
import { phaseAt, phases } from './schedule.js';

const sum = (values: readonly number[]) => values.reduce((a, b) => a + b, 0);

test('moves demand from one hot pod to another, then beyond the limit on all, then quiet', () => {
  for (const pods of [1, 2, 4, 8]) {
    const names = Array.from({ length: pods }, (_, i) => `voicebot-${i}`);
    const plan = phases(60_000, names, 150);
    assert.deepEqual(
      plan.map((p) => p.name),
      [`voicebot-0 hot`, `voicebot-${pods > 1 ? 1 : 0} hot`, 'all busy, beyond the limit', 'quiet'],
    );
    const [first, second, busy, quiet] = plan.map((p) => sum(p.demand));
    for (const within of [first, second, quiet]) assert.ok((within as number) <= 150, `${pods} pods: ${within}`);
    assert.ok((busy as number) > 150);
    assert.equal(plan[0]?.startMs, 0);
    assert.equal(plan.at(-1)?.endMs, 60_000);
    for (const [i, p] of plan.slice(1).entries()) assert.equal(p.startMs, plan[i]?.endMs);
  }
});

test('finds the phase at a moment, and the last one once the run is over', () => {
  const plan = phases(40_000, ['a', 'b'], 20);
  assert.equal(phaseAt(plan, 0).index, 0);
  assert.equal(phaseAt(plan, 10_000).index, 1);
  assert.equal(phaseAt(plan, 39_999).index, 3);
  assert.equal(phaseAt(plan, 45_000).index, 3);
});
