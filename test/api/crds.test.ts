/**
 * The sluice API on a real API server: the CRDs install, the examples apply, kubectl
 * shows and explains them, every invalid manifest is refused with a message naming
 * the offending field, and the file validator reaches the same verdicts.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { ApiException, CustomObjectsApi } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { apiResources, type JSONSchema, parseStreamBudgets, validateResource } from '../../crds/api/index.js';
import { repoRoot } from '../cluster/process.js';
import { type TestCluster, testCluster, testNamespace } from '../cluster/test-cluster.js';
import { completeBudget, completeLease, type InvalidCase, invalidCases } from './invalid-manifests.js';

const examplesDir = join(repoRoot, 'crds', 'examples');
const examples = readdirSync(examplesDir).filter((f) => f.endsWith('.yaml'));

let cluster: TestCluster;
let objects: CustomObjectsApi;
let namespace: string;

before(async () => {
  cluster = await testCluster();
  objects = cluster.kubeConfig().makeApiClient(CustomObjectsApi);
  namespace = await testNamespace('api');
});

function resource(kind: InvalidCase['kind']) {
  const { group, version, plural } = apiResources[kind];
  return { group, version, plural, namespace };
}

/** What the API server said about a write: undefined when it was accepted. */
async function refusal(write: () => Promise<unknown>): Promise<{ code: number; message: string } | undefined> {
  try {
    await write();
    return undefined;
  } catch (error) {
    if (!(error instanceof ApiException)) throw error;
    const body = typeof error.body === 'string' ? JSON.parse(error.body) : error.body;
    return { code: error.code, message: String(body?.message ?? error.message) };
  }
}

describe('CRDs', () => {
  test('are established with short names and the sluice category', async () => {
    const result = await cluster.kubectl(['api-resources', '--api-group=sluice.dev', '--no-headers']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^streambudgets\s+sb\s+sluice\.dev\/v1alpha1\s+true\s+StreamBudget$/m);
    assert.match(result.stdout, /^streamleases\s+sl\s+sluice\.dev\/v1alpha1\s+true\s+StreamLease$/m);
    const category = await cluster.kubectl(['get', 'sluice', '--namespace', namespace]);
    assert.equal(category.code, 0, category.stderr);
  });

  for (const file of examples) {
    test(`example ${file} applies and reads back with its defaults`, async () => {
      const result = await cluster.kubectl(['apply', '--namespace', namespace, '-f', join(examplesDir, file)]);
      assert.equal(result.code, 0, result.stderr);
      const name = parse(readFileSync(join(examplesDir, file), 'utf8')).metadata.name;
      const stored = (await objects.getNamespacedCustomObject({ ...resource('StreamBudget'), name })) as {
        spec: { reaping: { upstreamReleaseDelaySeconds: number }; allocation: { strategy: string } };
      };
      assert.equal(stored.spec.reaping.upstreamReleaseDelaySeconds, 10);
      assert.equal(stored.spec.allocation.strategy, 'Demand');
      // The file validator fills in the same defaults as the API server.
      const [fromFile] = parseStreamBudgets(readFileSync(join(examplesDir, file), 'utf8'), file);
      assert.deepEqual(fromFile?.spec, stored.spec);
    });
  }

  test('kubectl get streambudgets prints limit, in use, allocated, pods, ready and age', async () => {
    const budget = completeBudget('columns');
    await objects.createNamespacedCustomObject({ ...resource('StreamBudget'), body: budget });
    const status = { ...(budget.status as Record<string, unknown>), inUse: 87, allocated: 150, pods: 12 };
    await objects.replaceNamespacedCustomObjectStatus({
      ...resource('StreamBudget'),
      name: 'columns',
      body: { ...(await objects.getNamespacedCustomObject({ ...resource('StreamBudget'), name: 'columns' })), status },
    });
    const result = await cluster.kubectl(['get', 'streambudgets', 'columns', '--namespace', namespace]);
    assert.equal(result.code, 0, result.stderr);
    const [header, row] = result.stdout.trim().split('\n');
    assert.deepEqual(header?.split(/\s{2,}/), ['NAME', 'LIMIT', 'IN USE', 'ALLOCATED', 'PODS', 'READY', 'AGE']);
    assert.deepEqual(row?.split(/\s+/).slice(0, 6), ['columns', '150', '87', '150', '12', 'True']);
  });

  test('kubectl get streamleases prints budget, pod, grant, in use and heartbeat age', async () => {
    const lease = completeLease('columns');
    await objects.createNamespacedCustomObject({ ...resource('StreamLease'), body: lease });
    const stored = await objects.getNamespacedCustomObject({ ...resource('StreamLease'), name: 'columns' });
    const heartbeatTime = new Date(Date.now() - 5000).toISOString().replace(/\.\d+Z$/, 'Z');
    await objects.replaceNamespacedCustomObjectStatus({
      ...resource('StreamLease'),
      name: 'columns',
      body: { ...stored, status: { ...(lease.status as Record<string, unknown>), heartbeatTime } },
    });
    const result = await cluster.kubectl(['get', 'sl', 'columns', '--namespace', namespace]);
    assert.equal(result.code, 0, result.stderr);
    const [header, row] = result.stdout.trim().split('\n');
    assert.deepEqual(header?.split(/\s{2,}/), ['NAME', 'BUDGET', 'POD', 'GRANT', 'IN USE', 'HEARTBEAT', 'AGE']);
    const cells = row?.split(/\s+/) ?? [];
    assert.deepEqual(cells.slice(0, 5), ['columns', 'flux-prod', 'voicebot-0', '10', '4']);
    assert.match(cells[5] ?? '', /^\d+s$/);
  });

  test('kubectl explain documents every field', async () => {
    const spec = await cluster.kubectl(['explain', 'streambudget.spec']);
    assert.equal(spec.code, 0, spec.stderr);
    assert.match(spec.stdout, /The budget as declared by its owner\./);
    assert.match(
      spec.stdout,
      /maxConcurrentStreams\s+<integer> -required-\n\s+Streams the fleet may have open upstream at once/,
    );
    const nested = await cluster.kubectl(['explain', 'streamlease.status.observedEpoch']);
    assert.match(nested.stdout, /The spec epoch whose grant the sidecar has put in force\./);
    // Every property of both kinds, at every depth, carries a description.
    const undocumented: string[] = [];
    const walk = (schema: JSONSchema, path: string) => {
      for (const [key, prop] of Object.entries(schema.properties ?? {})) {
        if (key !== 'metadata' && !prop.description) undocumented.push(`${path}.${key}`);
        walk(prop, `${path}.${key}`);
      }
      if (schema.items) walk(schema.items, `${path}[]`);
    };
    for (const [kind, { schema }] of Object.entries(apiResources)) walk(schema, kind);
    assert.deepEqual(undocumented, []);
  });

  test('kubectl refuses unknown fields with their path', async () => {
    const budget = completeBudget('typo');
    (budget.spec as Record<string, unknown>).maxConcurentStreams = 10;
    const result = await cluster.kubectl(['apply', '--namespace', namespace, '-f', '-'], {
      input: JSON.stringify(budget),
    });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /unknown field "spec\.maxConcurentStreams"/);
  });
});

describe('invalid manifests', () => {
  const cases = invalidCases();

  test('cover every CEL rule with a case aimed at the field it names', () => {
    const names = cases.map((c) => c.name);
    assert.equal(new Set(names).size, names.length, 'case names are unique');
    const targets = new Map<string, number>();
    for (const { schema } of Object.values(apiResources)) {
      for (const field of ruleTargets(schema, '')) targets.set(field, (targets.get(field) ?? 0) + 1);
    }
    for (const [field, rules] of targets) {
      const aimed = cases.filter((c) => c.source === 'rule' && c.field === field).length;
      assert.ok(aimed >= rules, `${field}: ${rules} rule(s), ${aimed} case(s)`);
    }
  });

  for (const invalid of cases) {
    test(`are refused by the API server and the file validator alike: ${invalid.name}`, async () => {
      const name = `case-${cases.indexOf(invalid)}`;
      const target = resource(invalid.kind);
      const manifest = structuredClone(invalid.manifest);
      const metadata = manifest.metadata as Record<string, unknown>;
      if (metadata.name !== 'Flux_Prod') metadata.name = name;
      let refused: { code: number; message: string } | undefined;
      let stored: Record<string, unknown> | undefined;
      if (invalid.operation === 'create') {
        refused = await refusal(() =>
          objects.createNamespacedCustomObject({ ...target, body: manifest, dryRun: 'All', fieldValidation: 'Strict' }),
        );
      } else {
        const valid = invalid.kind === 'StreamLease' ? completeLease(name) : completeBudget(name);
        stored = (await objects.createNamespacedCustomObject({ ...target, body: valid })) as Record<string, unknown>;
        const body = { ...manifest, metadata: stored.metadata };
        refused = await refusal(() =>
          invalid.operation === 'status'
            ? objects.replaceNamespacedCustomObjectStatus({
                ...target,
                name,
                body,
                dryRun: 'All',
                fieldValidation: 'Strict',
              })
            : objects.replaceNamespacedCustomObject({
                ...target,
                name,
                body,
                dryRun: 'All',
                fieldValidation: 'Strict',
              }),
        );
      }
      assert.ok(refused, 'the API server accepted it');
      assert.ok([400, 422].includes(refused.code), `status ${refused.code}: ${refused.message}`);
      assert.ok(
        refused.message.includes(invalid.field),
        `the API server's message names ${invalid.field}: ${refused.message}`,
      );

      // Writes to a stored object (status, update) are checked against it, as the API server checks them.
      const base = invalid.kind === 'StreamLease' ? completeLease(name) : completeBudget(name);
      const old = invalid.operation === 'create' ? undefined : base;
      const verdict = validateResource({ ...manifest, metadata: { ...metadata } }, old);
      assert.equal(verdict.ok, false, 'the file validator accepted it');
      if (!verdict.ok) {
        const messages = verdict.errors.map((e) => e.message).join('\n');
        assert.ok(messages.includes(invalid.field), `the file validator's message names ${invalid.field}: ${messages}`);
      }
    });
  }

  test('edge cases get the same verdict from both', async () => {
    const budget = (
      name: string,
      change: (spec: Record<string, unknown>) => void,
      extra: Record<string, unknown> = {},
    ) => {
      const manifest = { ...completeBudget(name), ...extra };
      change(manifest.spec as Record<string, unknown>);
      return manifest;
    };
    const cases: [string, Record<string, unknown>][] = [
      [
        'a null optional field',
        budget('edge-null', (spec) => {
          spec.apiKeySecretRef = null;
        }),
      ],
      [
        'a null defaulted field',
        budget('edge-null-default', (spec) => {
          spec.allocation = null;
        }),
      ],
      ['an invalid status on create', budget('edge-status', () => {}, { status: { inUse: 1.5 } })],
      [
        'a no-break space in a path',
        budget('edge-nbsp', (spec) => {
          spec.match = { paths: ['/v2/listen\u00a0'] };
        }),
      ],
      [
        'a space in the upstream path',
        budget('edge-space', (spec) => {
          spec.upstream = 'wss://h/a b';
        }),
      ],
      [
        'a port that is not a number',
        budget('edge-port', (spec) => {
          spec.upstream = 'ws://foo:bar';
        }),
      ],
      [
        'a brace in the host',
        budget('edge-brace', (spec) => {
          spec.upstream = 'ws://a{b';
        }),
      ],
      [
        'an IPv6 host with a port',
        budget('edge-ipv6', (spec) => {
          spec.upstream = 'wss://[::1]:8443';
        }),
      ],
      ['generateName instead of name', { ...completeBudget(''), metadata: { generateName: 'edge-' } }],
      [
        'a label that is not a string',
        { ...completeBudget('edge-label'), metadata: { name: 'edge-label', labels: { a: 1 } } },
      ],
      [
        'a missing limit',
        budget('edge-missing', (spec) => {
          delete spec.maxConcurrentStreams;
        }),
      ],
    ];
    for (const [what, manifest] of cases) {
      const refused = await refusal(() =>
        objects.createNamespacedCustomObject({
          ...resource('StreamBudget'),
          body: manifest,
          dryRun: 'All',
          fieldValidation: 'Strict',
        }),
      );
      const verdict = validateResource(manifest);
      assert.equal(
        verdict.ok,
        refused === undefined,
        `${what}: the API server ${refused ? `refused it (${refused.message})` : 'accepted it'}, the file validator ${verdict.ok ? 'accepted it' : `refused it (${verdict.errors.map((e) => e.message).join('; ')})`}`,
      );
    }
  });

  test('valid manifests are accepted by both', async () => {
    const valid = [completeBudget('valid-budget'), completeLease('valid-lease')];
    for (const file of examples) valid.push(parse(readFileSync(join(examplesDir, file), 'utf8')));
    for (const [index, manifest] of valid.entries()) {
      (manifest.metadata as Record<string, unknown>).name = `valid-${index}`;
      const kind = manifest.kind as InvalidCase['kind'];
      const refused = await refusal(() =>
        objects.createNamespacedCustomObject({
          ...resource(kind),
          body: manifest,
          dryRun: 'All',
          fieldValidation: 'Strict',
        }),
      );
      assert.equal(refused, undefined, `${kind} refused: ${refused?.message}`);
      const verdict = validateResource(manifest);
      assert.ok(verdict.ok, verdict.ok ? '' : verdict.errors.map((e) => e.message).join('\n'));
    }
  });
});

/** The field each CEL rule in `schema` reports on, one entry per rule. */
function ruleTargets(schema: JSONSchema, path: string): string[] {
  const own = (schema['x-kubernetes-validations'] ?? []).map((rule) => path + (rule.fieldPath ?? ''));
  const nested = Object.entries(schema.properties ?? {}).flatMap(([key, prop]) =>
    ruleTargets(prop, path ? `${path}.${key}` : key),
  );
  return [...own, ...nested, ...(schema.items ? ruleTargets(schema.items, `${path}[0]`) : [])];
}
