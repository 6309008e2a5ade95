import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ApiException } from '@kubernetes/client-node';
import { describeFailure } from './request-failure.js';

describe('describeFailure', () => {
  test('describes a failure by code and reason, never by body or headers', () => {
    const refused = Object.assign(
      new Error('request to https://x/status failed, reason: connect ECONNREFUSED 127.0.0.1:6443'),
      { code: 'ECONNREFUSED' },
    );
    assert.deepEqual(describeFailure(refused), { code: 'ECONNREFUSED', reason: 'connect ECONNREFUSED 127.0.0.1:6443' });
    const forbidden = new ApiException(403, 'Forbidden', { reason: 'Forbidden', message: 'no' }, { secret: 'h' });
    assert.deepEqual(describeFailure(forbidden), { code: 403, reason: 'Forbidden' });
  });

  test('reads the reason from a body the client left as text', () => {
    const gone = new ApiException(410, 'Gone', JSON.stringify({ reason: 'Expired', message: 'too old' }), {});
    assert.deepEqual(describeFailure(gone), { code: 410, reason: 'Expired' });
    const garbled = new ApiException(502, 'Bad Gateway', '<html>proxy error</html>', { authorization: 'Bearer x' });
    assert.deepEqual(describeFailure(garbled), { code: 502, reason: 'Unknown' });
  });

  test('takes the status of a failed watch, and nothing of no error at all', () => {
    const watch = Object.assign(new Error('Forbidden'), { statusCode: 403 });
    assert.deepEqual(describeFailure(watch), { code: 403, reason: 'Forbidden' });
    assert.deepEqual(describeFailure(undefined), {});
  });
});
