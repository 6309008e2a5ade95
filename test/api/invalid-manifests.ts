/**
 * Invalid sluice manifests, each wrong in one way, for the API server and the file
 * validator alike. One case for every bound, enum, pattern and required field is
 * derived from the schemas themselves, so a new bound gets a case without anyone
 * remembering to write it; CEL rules, types and unknown fields are written by hand.
 */
import { apiResources, type JSONSchema } from '../../crds/api/index.js';

/** Where a case is sent: a create, a write to the status subresource, or an update of a stored object. */
export type Operation = 'create' | 'status' | 'update';

export interface InvalidCase {
  name: string;
  kind: 'StreamBudget' | 'StreamLease';
  operation: Operation;
  manifest: Record<string, unknown>;
  /** The field the refusal must name. */
  field: string;
  /** Derived from a bound of the schema, or written by hand against a CEL rule or the object's shape. */
  source: 'bound' | 'rule' | 'shape';
}

/** A StreamBudget with every optional field set, so every field's bounds can be exercised. */
export function completeBudget(name = 'everything'): Record<string, unknown> {
  return {
    apiVersion: 'sluice.dev/v1alpha1',
    kind: 'StreamBudget',
    metadata: { name },
    spec: {
      provider: 'deepgram',
      projectId: '5468b6b1-3f54-4778-9f0a-71dad34ca79d',
      upstream: 'wss://api.deepgram.com',
      apiKeySecretRef: { name: 'deepgram', key: 'api-key' },
      match: { paths: ['/v2/listen'], models: ['flux-general-*'] },
      podSelector: {
        matchLabels: { app: 'voicebot' },
        matchExpressions: [{ key: 'tier', operator: 'In', values: ['gold'] }],
      },
      maxConcurrentStreams: 150,
      newSessions: {
        perMinute: 300,
        autoscale: {
          scaleUpAtPercent: 70,
          stepPercent: 10,
          intervalSeconds: 60,
          scaleDownBelowPercent: 50,
          maxPerMinute: 3000,
        },
      },
      allocation: { strategy: 'Demand', minPerPod: 1, leaseDurationSeconds: 30 },
      admission: { queueTimeoutMs: 2000, maxQueueLength: 100 },
      reaping: {
        idleTimeoutSeconds: 30,
        pingIntervalSeconds: 15,
        maxStreamSeconds: 14400,
        upstreamReleaseDelaySeconds: 10,
      },
    },
    status: {
      observedGeneration: 1,
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          observedGeneration: 1,
          lastTransitionTime: '2026-01-01T00:00:00Z',
          reason: 'Enforced',
          message: 'The budget is enforced.',
        },
      ],
      pods: 1,
      allocated: 150,
      inUse: 3,
      queued: 0,
      peakInUse: 5,
      peakWindowSeconds: 300,
      newSessionsPerMinute: 300,
      admittedTotal: 10,
      rejectedTotal: 0,
      reapedTotal: 0,
      upstreamRejectedTotal: 0,
    },
  };
}

/** A StreamLease with every optional field set. */
export function completeLease(name = 'everything'): Record<string, unknown> {
  return {
    apiVersion: 'sluice.dev/v1alpha1',
    kind: 'StreamLease',
    metadata: { name },
    spec: {
      budgetName: 'flux-prod',
      podName: 'voicebot-0',
      podUID: '0f8fad5b-d9cb-469f-a165-70867728950e',
      grant: { concurrency: 10, newSessionsPerMinute: 60 },
      epoch: 3,
    },
    status: {
      observedEpoch: 3,
      grant: { concurrency: 10, newSessionsPerMinute: 60 },
      inUse: 4,
      staleSlots: 1,
      queued: 0,
      demand: 6,
      sessionsLastMinute: 2,
      sessionDemand: 12,
      sessionWindow: [0, 1, 0, 1],
      admittedTotal: 100,
      rejectedTotal: 1,
      reapedTotal: 2,
      upstreamRejectedTotal: 0,
      heartbeatTime: '2026-01-01T00:00:00Z',
    },
  };
}

type Path = (string | number)[];

function show(path: Path): string {
  return path.reduce<string>(
    (out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${key}` : key),
    '',
  );
}

function setAt(object: Record<string, unknown>, path: Path, value: unknown): Record<string, unknown> {
  const copy = structuredClone(object);
  let node: Record<string | number, unknown> = copy;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  const last = path.at(-1) as string | number;
  if (value === undefined) delete node[last];
  else node[last] = value;
  return copy;
}

function getAt(object: unknown, path: Path): unknown {
  return path.reduce<unknown>((node, key) => (node as Record<string | number, unknown> | undefined)?.[key], object);
}

/** A string that breaks `pattern` while keeping within the length bounds. */
function breakPattern(schema: JSONSchema): string {
  const candidates = ['has space', 'UPPER_AND_UNDER!', 'Ω'];
  const pattern = new RegExp(schema.pattern as string, 'u');
  const found = candidates.find(
    (c) => !pattern.test(c) && c.length >= (schema.minLength ?? 0) && c.length <= (schema.maxLength ?? Infinity),
  );
  if (!found) throw new Error(`no candidate breaks /${schema.pattern}/`);
  return found;
}

/** `count` distinct items like `sample`, for lists that must stay unique. */
function distinctItems(sample: unknown, count: number): unknown[] {
  return Array.from({ length: count }, (_, i) => {
    if (typeof sample === 'string') return `${sample}${i}`;
    if (typeof sample === 'number') return sample + i;
    const item = structuredClone(sample) as Record<string, unknown>;
    for (const key of ['type', 'key']) if (typeof item[key] === 'string') item[key] = `${item[key]}${i}`;
    return item;
  });
}

function derive(
  kind: InvalidCase['kind'],
  base: Record<string, unknown>,
  schema: JSONSchema,
  path: Path,
  cases: InvalidCase[],
): void {
  const operation: Operation = path[0] === 'status' ? 'status' : 'create';
  const add = (what: string, value: unknown) =>
    cases.push({
      name: `${kind} ${show(path)} ${what}`,
      kind,
      operation,
      manifest: setAt(base, path, value),
      field: show(path),
      source: 'bound',
    });
  const current = getAt(base, path);

  if (schema.enum) add('outside its enum', 'NotAValue');
  if (schema.minimum !== undefined) add(`below its minimum ${schema.minimum}`, schema.minimum - 1);
  if (schema.maximum !== undefined) add(`above its maximum ${schema.maximum}`, schema.maximum + 1);
  if (schema.minLength !== undefined && schema.minLength > 0) add('too short', 'a'.repeat(schema.minLength - 1));
  if (schema.maxLength !== undefined) {
    const sample = typeof current === 'string' && current.length > 0 ? current : 'a';
    add('too long', sample.repeat(Math.ceil((schema.maxLength + 1) / sample.length)).slice(0, schema.maxLength + 1));
  }
  if (schema.pattern !== undefined) add('not matching its pattern', breakPattern(schema));
  if (schema.format === 'date-time') add('not a date-time', 'yesterday');
  if (schema.minItems !== undefined && schema.minItems > 0) add('with too few items', []);
  if (schema.maxItems !== undefined && Array.isArray(current)) {
    add('with too many items', distinctItems(current[0], schema.maxItems + 1));
  }
  if (schema.maxProperties !== undefined) {
    add(
      'with too many entries',
      Object.fromEntries(Array.from({ length: schema.maxProperties + 1 }, (_, i) => [`k${i}`, 'v'])),
    );
  }
  for (const key of schema.required ?? []) {
    // Defaulted fields are filled in by the server before validation, so they cannot go missing.
    if (schema.properties?.[key]?.default !== undefined) continue;
    cases.push({
      name: `${kind} ${show([...path, key])} missing`,
      kind,
      operation,
      manifest: setAt(base, [...path, key], undefined),
      field: show([...path, key]),
      source: 'bound',
    });
  }
  for (const [key, prop] of Object.entries(schema.properties ?? {})) {
    if (getAt(base, [...path, key]) !== undefined) derive(kind, base, prop, [...path, key], cases);
  }
  if (schema.items && Array.isArray(current) && current.length > 0)
    derive(kind, base, schema.items, [...path, 0], cases);
  if (typeof schema.additionalProperties === 'object' && current && typeof current === 'object') {
    const first = Object.keys(current)[0];
    if (first !== undefined) derive(kind, base, schema.additionalProperties, [...path, first], cases);
  }
}

function handWritten(): InvalidCase[] {
  const budget = completeBudget();
  const lease = completeLease();
  const spec =
    (source: InvalidCase['source']) =>
    (path: Path, value: unknown, name: string, field = show(['spec', ...path])): InvalidCase => ({
      name,
      kind: 'StreamBudget',
      operation: 'create',
      manifest: setAt(budget, ['spec', ...path], value),
      field,
      source,
    });
  const rule = spec('rule');
  const shape = spec('shape');
  const requirement = 'spec.podSelector.matchExpressions[0].values';
  return [
    // At least one per CEL rule, aimed at the field the rule names.
    rule(['allocation', 'minPerPod'], 151, 'minPerPod above maxConcurrentStreams'),
    rule(['upstream'], 'https://api.deepgram.com', 'upstream with an http scheme'),
    rule(['upstream'], 'wss:///v1', 'upstream without a host'),
    rule(['upstream'], 'wss://api.deepgram.com/?model=x', 'upstream with a query'),
    rule(['podSelector'], {}, 'podSelector that selects everything'),
    rule(['podSelector', 'matchExpressions', 0, 'values'], [], 'In requirement without values', requirement),
    rule(
      ['podSelector', 'matchExpressions', 0],
      { key: 'tier', operator: 'Exists', values: ['gold'] },
      'Exists requirement with values',
      requirement,
    ),
    rule(['newSessions', 'autoscale', 'maxPerMinute'], 299, 'autoscale ceiling below the base rate'),
    rule(['newSessions', 'autoscale', 'scaleDownBelowPercent'], 70, 'scale-down threshold not below scale-up'),
    rule(
      ['reaping', 'maxStreamSeconds'],
      15,
      'ping interval not below the maximum stream duration',
      'spec.reaping.pingIntervalSeconds',
    ),
    // Types, unknown fields, duplicates, names.
    shape(['maxConcurrentStreams'], '150', 'limit given as a string'),
    shape(['maxConcurrentStreams'], 1.5, 'limit given as a fraction'),
    shape(['match', 'paths'], '/v2/listen', 'paths given as a string'),
    shape(['admission'], 'fast', 'admission given as a string'),
    shape(['match', 'paths'], ['/v2/listen', '/v2/listen'], 'paths listed twice', 'spec.match.paths[1]'),
    shape(['maxConcurentStreams'], 150, 'misspelt field'),
    shape(['reaping', 'idleTimeout'], 30, 'unknown nested field'),
    {
      name: 'name that is not a DNS subdomain',
      kind: 'StreamBudget',
      operation: 'create',
      manifest: setAt(budget, ['metadata', 'name'], 'Flux_Prod'),
      field: 'metadata.name',
      source: 'shape',
    },
    // Transition rules: a lease never changes hands.
    {
      name: 'lease epoch decreased',
      kind: 'StreamLease',
      operation: 'update',
      manifest: setAt(lease, ['spec', 'epoch'], 2),
      field: 'spec.epoch',
      source: 'rule',
    },
    ...(['budgetName', 'podName', 'podUID'] as const).map(
      (key): InvalidCase => ({
        name: `lease ${key} changed`,
        kind: 'StreamLease',
        operation: 'update',
        manifest: setAt(lease, ['spec', key], key === 'podUID' ? '6a1f3b5e-0000-4000-8000-000000000000' : 'other'),
        field: `spec.${key}`,
        source: 'rule',
      }),
    ),
  ];
}

/** Every invalid case: derived from the schemas, then the hand-written ones. */
export function invalidCases(): InvalidCase[] {
  const cases: InvalidCase[] = [];
  derive('StreamBudget', completeBudget(), apiResources.StreamBudget.schema, [], cases);
  derive('StreamLease', completeLease(), apiResources.StreamLease.schema, [], cases);
  return [...cases, ...handWritten()];
}
