import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Sample, utilizationOverLimit } from './summary.js';

const at = (seconds: number, demand: number, upstreamInUse: number): Sample => ({
  elapsedMs: seconds * 1000,
  phaseIndex: 0,
  demand,
  open: upstreamInUse,
  upstreamInUse,
});

test('measures budget use only while demand exceeds the limit', () => {
  const samples = [at(0, 5, 5), at(1, 20, 6), at(2, 20, 9), at(3, 20, 10), at(4, 20, 10), at(5, 4, 4)];
  const use = utilizationOverLimit(samples, 10);
  assert.deepEqual(use, { seconds: 4, average: 8.75, peak: 10, fillSeconds: 2 });
});

test('reports no budget use when demand never exceeds the limit', () => {
  assert.equal(utilizationOverLimit([at(0, 5, 5), at(1, 10, 10)], 10), undefined);
});

test('says when the fleet never filled the budget', () => {
  assert.equal(utilizationOverLimit([at(0, 20, 3), at(1, 20, 4)], 10)?.fillSeconds, undefined);
});
