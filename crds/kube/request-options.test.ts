import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { HttpMethod, PatchStrategy, RequestContext } from '@kubernetes/client-node';
import { leaseTimings, type StreamBudget } from '../api/index.js';
import { deadlineMs, requestOptions } from './request-options.js';

const budget = (seconds: number) =>
  ({ spec: { allocation: { leaseDurationSeconds: seconds, strategy: 'Demand', minPerPod: 1 } } }) as Pick<
    StreamBudget,
    'spec'
  >;

/** Records what reaches AbortSignal.timeout, which throws ERR_OUT_OF_RANGE on anything but an integer. */
const timeouts: number[] = [];
const realTimeout = AbortSignal.timeout.bind(AbortSignal);
AbortSignal.timeout = (ms: number) => {
  timeouts.push(ms);
  return realTimeout(ms);
};
afterEach(() => {
  timeouts.length = 0;
});

describe('request deadlines', () => {
  test('every lease duration from 2 to 3600 s gives whole timings and a status write deadline AbortSignal.timeout takes', async () => {
    for (let seconds = 2; seconds <= 3600; seconds++) {
      const timings = leaseTimings(budget(seconds));
      for (const [name, value] of Object.entries(timings)) {
        assert.ok(Number.isInteger(value) && value > 0, `${name} of a ${seconds} s lease is ${value}`);
      }
      assert.ok(timings.fenceAfterMs < timings.leaseDurationMs && timings.leaseDurationMs < timings.staleAfterMs);
      // The options the sidecar's status write is sent with, run as the client runs them.
      const options = requestOptions({ timeoutMs: timings.writeTimeoutMs, contentType: PatchStrategy.MergePatch });
      const context = new RequestContext('https://127.0.0.1/apis', HttpMethod.PATCH);
      for (const middleware of options.middleware) await middleware.pre(context).toPromise();
      assert.equal(context.getHeaders()['Content-Type'], PatchStrategy.MergePatch);
      assert.ok(context.getSignal(), `a ${seconds} s lease's write has a deadline`);
    }
    assert.equal(timeouts.length, 3599);
    assert.ok(timeouts.every(Number.isInteger));
  });

  test('rounds a fractional deadline up, and refuses one that is not a positive number where it is set', () => {
    assert.equal(deadlineMs(3333.3333333333335), 3334);
    assert.throws(() => requestOptions({ timeoutMs: 0 }), RangeError);
    assert.throws(() => requestOptions({ timeoutMs: Number.NaN }), RangeError);
  });

  test('gives up when the caller aborts, before the deadline', async () => {
    const abort = new AbortController();
    const options = requestOptions({ timeoutMs: 60_000, signal: abort.signal });
    const context = new RequestContext('https://127.0.0.1/apis', HttpMethod.GET);
    await options.middleware[0]?.pre(context).toPromise();
    const signal = context.getSignal() as AbortSignal;
    assert.equal(signal.aborted, false);
    abort.abort();
    assert.equal(signal.aborted, true);
  });
});
