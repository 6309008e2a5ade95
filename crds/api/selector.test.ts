import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { StreamBudgetSpecPodSelector, StreamBudgetSpecPodSelectorMatchExpression } from './generated.js';
import { selects } from './selector.js';

type Operator = StreamBudgetSpecPodSelectorMatchExpression['operator'];

const labels = { app: 'voicebot', tier: 'web' };

describe('pod selectors (shared by the operator and the sidecar)', () => {
  test('matchLabels needs every pair', () => {
    assert.equal(selects({ matchLabels: { app: 'voicebot' } }, labels), true);
    assert.equal(selects({ matchLabels: { app: 'voicebot', tier: 'db' } }, labels), false);
    assert.equal(selects({ matchLabels: { zone: 'a' } }, labels), false);
  });

  test('an empty value matches only a label that is there and empty', () => {
    assert.equal(selects({ matchLabels: { canary: '' } }, { canary: '' }), true);
    assert.equal(selects({ matchLabels: { canary: '' } }, {}), false);
    assert.equal(
      selects({ matchExpressions: [{ key: 'canary', operator: 'In', values: [''] }] }, { canary: '' }),
      true,
    );
    assert.equal(selects({ matchExpressions: [{ key: 'canary', operator: 'In', values: [''] }] }, {}), false);
  });

  test('expressions read as Kubernetes reads them', () => {
    const expr = (operator: Operator, key: string, values?: string[]) =>
      selects({ matchExpressions: [{ key, operator, values }] }, labels);
    assert.equal(expr('In', 'tier', ['web', 'api']), true);
    assert.equal(expr('In', 'tier', ['api']), false);
    assert.equal(expr('In', 'zone', ['a']), false);
    assert.equal(expr('NotIn', 'tier', ['api']), true);
    assert.equal(expr('NotIn', 'tier', ['web']), false);
    assert.equal(expr('NotIn', 'zone', ['a']), true, 'NotIn holds for a pod without the key');
    assert.equal(expr('Exists', 'app'), true);
    assert.equal(expr('Exists', 'zone'), false);
    assert.equal(expr('DoesNotExist', 'zone'), true);
    assert.equal(expr('DoesNotExist', 'app'), false);
  });

  test('values left out are no values: In selects nothing, NotIn everything', () => {
    assert.equal(selects({ matchExpressions: [{ key: 'tier', operator: 'In' }] }, labels), false);
    assert.equal(selects({ matchExpressions: [{ key: 'tier', operator: 'NotIn' }] }, labels), true);
    assert.equal(selects({ matchExpressions: [{ key: 'tier', operator: 'Exists', values: ['db'] }] }, labels), true);
  });

  test('labels and expressions must all hold', () => {
    const selector = {
      matchLabels: { app: 'voicebot' },
      matchExpressions: [{ key: 'tier', operator: 'In' as const, values: ['db'] }],
    };
    assert.equal(selects(selector, labels), false);
    assert.equal(selects(selector, { ...labels, tier: 'db' }), true);
    const both = {
      matchExpressions: [
        { key: 'tier', operator: 'In' as const, values: ['web', 'db'] },
        { key: 'tier', operator: 'NotIn' as const, values: ['web'] },
      ],
    };
    assert.equal(selects(both, labels), false, 'two requirements on one key both apply');
    assert.equal(selects(both, { tier: 'db' }), true);
  });

  test('an empty selector selects every pod, as in Kubernetes (the CRD refuses one)', () => {
    assert.equal(selects({}, labels), true);
    assert.equal(selects({ matchLabels: {}, matchExpressions: [] }, {}), true);
  });

  test('an operator this version does not know selects nothing', () => {
    const unknown = { key: 'app', operator: 'Gt' as Operator, values: ['1'] };
    assert.equal(selects({ matchExpressions: [unknown] }, labels), false);
    assert.equal(selects({ matchLabels: { app: 'voicebot' }, matchExpressions: [unknown] }, labels), false);
  });

  test("a key is looked up among the pod's own labels only, never an object's built-in properties", () => {
    for (const key of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      assert.equal(selects({ matchExpressions: [{ key, operator: 'Exists' }] }, {}), false, `Exists ${key}`);
      assert.equal(selects({ matchExpressions: [{ key, operator: 'DoesNotExist' }] }, {}), true, `DoesNotExist ${key}`);
      assert.equal(
        selects({ matchExpressions: [{ key, operator: 'NotIn', values: ['x'] }] }, {}),
        true,
        `NotIn ${key}`,
      );
      assert.equal(selects({ matchLabels: { [key]: 'x' } }, {}), false, `matchLabels ${key}`);
    }
    const own = JSON.parse('{"__proto__": "x"}') as Record<string, string>;
    assert.equal(selects({ matchExpressions: [{ key: '__proto__', operator: 'In', values: ['x'] }] }, own), true);
  });
});

describe('pod selectors, as properties', () => {
  const key = fc.constantFrom('app', 'tier', 'zone', 'track');
  const value = fc.constantFrom('', 'a', 'b', 'c');
  const podLabels = fc.dictionary(key, value, { maxKeys: 4 });
  const expression: fc.Arbitrary<StreamBudgetSpecPodSelectorMatchExpression> = fc.record(
    {
      key,
      operator: fc.constantFrom<Operator>('In', 'NotIn', 'Exists', 'DoesNotExist'),
      values: fc.uniqueArray(value, { maxLength: 3 }),
    },
    { requiredKeys: ['key', 'operator'] },
  );
  const selector: fc.Arbitrary<StreamBudgetSpecPodSelector> = fc.record(
    {
      matchLabels: fc.dictionary(key, value, { maxKeys: 3 }),
      matchExpressions: fc.array(expression, { maxLength: 4 }),
    },
    { requiredKeys: [] },
  );

  test('a selector holds exactly when each of its requirements holds alone', () => {
    fc.assert(
      fc.property(selector, podLabels, (s, pod) => {
        const requirements: StreamBudgetSpecPodSelector[] = [
          ...Object.entries(s.matchLabels ?? {}).map(([k, v]) => ({ matchLabels: { [k]: v } })),
          ...(s.matchExpressions ?? []).map((e) => ({ matchExpressions: [e] })),
        ];
        assert.equal(
          selects(s, pod),
          requirements.every((r) => selects(r, pod)),
        );
      }),
    );
  });

  test('matchLabels key=value is the expression key In [value]', () => {
    fc.assert(
      fc.property(key, value, podLabels, (k, v, pod) => {
        assert.equal(
          selects({ matchLabels: { [k]: v } }, pod),
          selects({ matchExpressions: [{ key: k, operator: 'In', values: [v] }] }, pod),
        );
      }),
    );
  });

  test('NotIn is the negation of In, and DoesNotExist of Exists', () => {
    fc.assert(
      fc.property(key, fc.uniqueArray(value, { maxLength: 3 }), podLabels, (k, values, pod) => {
        const holds = (operator: Operator) => selects({ matchExpressions: [{ key: k, operator, values }] }, pod);
        assert.equal(holds('NotIn'), !holds('In'));
        assert.equal(holds('DoesNotExist'), !holds('Exists'));
        assert.equal(holds('Exists'), Object.hasOwn(pod, k));
      }),
    );
  });
});
