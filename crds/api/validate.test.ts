import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { celEnvironment } from './cel.js';
import { InvalidManifestError, parseStreamBudgets, type StreamBudget, validateResource } from './index.js';

// The validator in file form: the sidecar reads budgets this way when it runs without Kubernetes.

const examples = join(import.meta.dirname, '..', 'examples');

const minimal = `
apiVersion: sluice.dev/v1alpha1
kind: StreamBudget
metadata: {name: minimal}
spec:
  projectId: p1
  podSelector: {matchLabels: {app: voicebot}}
  maxConcurrentStreams: 5
`;

describe('validateResource', () => {
  test('fills in every default, as the API server does', () => {
    const [budget] = parseStreamBudgets(minimal);
    assert.deepEqual(budget?.spec, {
      provider: 'deepgram',
      projectId: 'p1',
      upstream: 'wss://api.deepgram.com',
      podSelector: { matchLabels: { app: 'voicebot' } },
      maxConcurrentStreams: 5,
      allocation: { strategy: 'Demand', minPerPod: 1, leaseDurationSeconds: 30 },
      admission: { queueTimeoutMs: 2000, maxQueueLength: 100 },
      reaping: {
        idleTimeoutSeconds: 30,
        pingIntervalSeconds: 15,
        maxStreamSeconds: 14400,
        upstreamReleaseDelaySeconds: 10,
      },
    } satisfies StreamBudget['spec']);
  });

  test('leaves the input untouched', () => {
    const input = { apiVersion: 'sluice.dev/v1alpha1', kind: 'StreamLease', metadata: { name: 'a' }, spec: {} };
    const copy = structuredClone(input);
    validateResource(input);
    assert.deepEqual(input, copy);
  });

  test('reports every problem with its path, in the API server style', () => {
    const result = validateResource({
      apiVersion: 'sluice.dev/v1alpha1',
      kind: 'StreamBudget',
      metadata: { name: 'x' },
      spec: { projectId: '', podSelector: { matchLabels: { app: 'a' } }, maxConcurrentStreams: 0 },
    });
    assert.equal(result.ok, false);
    const messages = result.ok ? [] : result.errors.map((e) => e.message);
    assert.deepEqual(messages.sort(), [
      'spec.allocation.minPerPod: Invalid value: "object": must not be greater than spec.maxConcurrentStreams',
      'spec.maxConcurrentStreams: Invalid value: 0: spec.maxConcurrentStreams in body should be greater than or equal to 1',
      'spec.projectId: Invalid value: "": spec.projectId in body should be at least 1 chars long',
      `spec.projectId: Invalid value: "": spec.projectId in body should match '^[A-Za-z0-9][A-Za-z0-9._-]*$'`,
    ]);
  });

  test('drops null fields, or defaults them, as the API server does', () => {
    const [budget] = parseStreamBudgets(`${minimal}  allocation:
  apiKeySecretRef: null
`);
    assert.equal(budget?.spec.allocation.minPerPod, 1);
    assert.equal('apiKeySecretRef' in (budget?.spec ?? {}), false);
  });

  test('ignores status on create, as the API server does with a status subresource', () => {
    const result = validateResource<Record<string, unknown>>({
      ...parseStreamBudgets(minimal)[0],
      status: { inUse: 1.5 },
    });
    assert.ok(result.ok);
    assert.equal('status' in result.value, false);
  });

  test('reads white space in patterns as RE2 does: ASCII only', () => {
    const result = validateResource({
      ...parseStreamBudgets(minimal)[0],
      spec: { ...parseStreamBudgets(minimal)[0]?.spec, match: { paths: ['/v2/listen\u00a0'] } },
    });
    assert.ok(result.ok, 'a no-break space is not \\s in RE2');
  });

  test('skips CEL rules after a blocking error, like the API server', () => {
    const result = validateResource({
      apiVersion: 'sluice.dev/v1alpha1',
      kind: 'StreamBudget',
      metadata: { name: 'x' },
      spec: { projectId: 'p', podSelector: {}, maxConcurrentStreams: 'many', provider: 'openai' },
    });
    assert.equal(result.ok, false);
    const fields = result.ok ? [] : result.errors.map((e) => e.field);
    assert.deepEqual(fields, ['spec.maxConcurrentStreams', 'spec.provider', '<nil>']);
  });

  test('runs transition rules only when given the stored object', () => {
    const lease = {
      apiVersion: 'sluice.dev/v1alpha1',
      kind: 'StreamLease',
      metadata: { name: 'l' },
      spec: { budgetName: 'b', podName: 'p', podUID: 'u1', grant: { concurrency: 1 }, epoch: 0 },
    };
    assert.ok(validateResource(lease).ok);
    const moved = structuredClone(lease);
    moved.spec.podUID = 'u2';
    assert.ok(validateResource(moved).ok, 'a create has no old object');
    const update = validateResource(moved, lease);
    assert.equal(update.ok, false);
    assert.deepEqual(update.ok ? [] : update.errors.map((e) => e.message), [
      'spec.podUID: Invalid value: "string": is immutable',
    ]);
  });

  test('refuses kinds outside the sluice API', () => {
    const result = validateResource({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' } });
    assert.equal(result.ok, false);
  });
});

describe('the CEL URL functions', () => {
  const hostOf = (url: string) => celEnvironment.evaluate('url(self).getHostname()', { self: url });
  test('parse like Go, not like a browser', () => {
    assert.equal(hostOf('wss://api.deepgram.com:443/v1'), 'api.deepgram.com');
    assert.equal(hostOf('ws://[::1]:8080'), '::1');
    assert.equal(hostOf('ws:///no-host'), '');
    assert.equal(hostOf('ws://user:secret@example.com'), 'example.com');
    assert.equal(celEnvironment.evaluate('url(self).getScheme()', { self: 'WSS://A' }), 'wss');
  });
  test('isURL accepts absolute URLs and paths only', () => {
    for (const [text, expected] of [
      ['wss://api.deepgram.com', true],
      ['/v1/listen', true],
      ['api.deepgram.com', false],
      ['wss://api deepgram.com', false],
      ['', false],
      // Checked against Go's url.ParseRequestURI.
      ['ws://foo:bar', false],
      ['ws://a{b', false],
      ['ws://[::1', false],
      ['ws://a%zz/', false],
      ['wss://h/a b', true],
      ['ws:opaque', false],
      ['wss://[::1]:8443/v1', true],
    ] as const) {
      assert.equal(celEnvironment.evaluate('isURL(self)', { self: text }), expected, text);
    }
  });
});

describe('parseStreamBudgets', () => {
  test('reads several budgets from one file', () => {
    const text = ['flux-budget.yaml', 'nova-budget.yaml']
      .map((f) => readFileSync(join(examples, f), 'utf8'))
      .join('\n---\n');
    const budgets = parseStreamBudgets(`${text}\n---\n`);
    assert.deepEqual(
      budgets.map((b) => b.metadata.name),
      ['flux-prod', 'nova-prod'],
    );
  });

  test('fails the whole file on one bad document, naming it', () => {
    const text = `${minimal}\n---\n${minimal.replace('maxConcurrentStreams: 5', 'maxConcurrentStreams: -1').replace('minimal', 'broken')}`;
    assert.throws(
      () => parseStreamBudgets(text, 'budgets.yaml'),
      (error: unknown) =>
        error instanceof InvalidManifestError &&
        error.code === 'SLUICE_E_INVALID_MANIFEST' &&
        error.problems.length === 2 &&
        error.problems.every((p) => p.startsWith('document 2 (broken): spec.')) &&
        error.message.startsWith('budgets.yaml is not a valid list of StreamBudgets'),
    );
  });

  test('refuses YAML syntax errors, other kinds, duplicates and empty files', () => {
    const cases: [string, RegExp][] = [
      ['spec: [', /document 1: /],
      ['apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}', /kind: Unsupported value: "ConfigMap"/],
      [`${minimal}\n---\n${minimal}`, /document 2: metadata\.name: Duplicate value: "minimal"/],
      ['# nothing here\n', /no StreamBudget found/],
    ];
    for (const [text, expected] of cases) {
      assert.throws(() => parseStreamBudgets(text), expected);
    }
  });
});
