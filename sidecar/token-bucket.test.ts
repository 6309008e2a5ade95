import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TokenBucket } from './token-bucket.js';

describe('TokenBucket', () => {
  test('starts full and refills at the rate, never above the burst', () => {
    const bucket = new TokenBucket(60, 2, 0);
    assert.equal(bucket.take(0), true);
    assert.equal(bucket.take(0), true);
    assert.equal(bucket.take(0), false);
    assert.equal(bucket.waitMs(0), 1000);
    assert.equal(bucket.take(999), false);
    assert.equal(bucket.take(1000), true);
    assert.equal(bucket.tokens(60_000), 2);
  });

  test('gives back a token for a stream that never started', () => {
    const bucket = new TokenBucket(0, 1, 0);
    assert.equal(bucket.take(0), true);
    bucket.giveBack(0);
    assert.equal(bucket.take(0), true);
    assert.equal(bucket.waitMs(0), Number.POSITIVE_INFINITY);
  });

  test('clips tokens in hand to a lowered burst', () => {
    const bucket = new TokenBucket(600, 10, 0);
    bucket.update(60, 1, 0);
    assert.equal(bucket.tokens(0), 1);
    assert.equal(bucket.take(0), true);
    assert.equal(bucket.waitMs(0), 1000);
  });
});
