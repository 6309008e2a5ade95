/**
 * The pod selector as the API server reads it: for pods with every mix of a few labels,
 * the pods sluice's selector picks are exactly those kube-apiserver lists for the same
 * selector, so the operator, the sidecar and kubectl always agree on a budget's pods.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import fc from 'fast-check';
import type {
  StreamBudgetSpecPodSelector,
  StreamBudgetSpecPodSelectorMatchExpression,
} from '../../crds/api/generated.js';
import { selects } from '../../crds/api/index.js';
import { testCluster, testNamespace } from '../cluster/test-cluster.js';
import { waitFor } from '../support/wait.js';

const keys = ['app', 'tier', 'zone'] as const;
const values = ['', 'a', 'b'] as const;

/** The same selector in the API's query syntax. */
function labelSelector(selector: StreamBudgetSpecPodSelector): string {
  const set = (list: string[] = []) => `(${list.join(',')})`;
  return [
    ...Object.entries(selector.matchLabels ?? {}).map(([key, value]) => `${key}=${value}`),
    ...(selector.matchExpressions ?? []).map(({ key, operator, values: list }) => {
      if (operator === 'In') return `${key} in ${set(list)}`;
      if (operator === 'NotIn') return `${key} notin ${set(list)}`;
      return operator === 'Exists' ? key : `!${key}`;
    }),
  ].join(',');
}

test('selects the pods the API server lists for the same selector', async () => {
  const core = (await testCluster()).kubeConfig().makeApiClient(CoreV1Api);
  const namespace = await testNamespace('selector');
  await waitFor('the default service account', () => core.readNamespacedServiceAccount({ name: 'default', namespace }));

  // Every pod from no labels to all three, each key absent or with one of the values.
  const choices: Record<string, string>[] = [{}];
  for (const key of keys) {
    const next: Record<string, string>[] = [];
    for (const labels of choices) {
      next.push(labels);
      for (const value of values) next.push({ ...labels, [key]: value });
    }
    choices.splice(0, choices.length, ...next);
  }
  const pods = choices.map((labels, i) => ({ name: `pod-${i}`, labels }));
  for (const pod of pods) {
    await core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name: pod.name, labels: pod.labels },
        spec: { containers: [{ name: 'app', image: 'registry.invalid/app:1' }] },
      },
    });
  }

  const key = fc.constantFrom(...keys);
  const value = fc.constantFrom(...values);
  // The query syntax has no empty set: In and NotIn get at least one value.
  const expression: fc.Arbitrary<StreamBudgetSpecPodSelectorMatchExpression> = fc.oneof(
    fc.record({
      key,
      operator: fc.constantFrom('In' as const, 'NotIn' as const),
      values: fc.uniqueArray(value, { minLength: 1, maxLength: 3 }),
    }),
    fc.record({ key, operator: fc.constantFrom('Exists' as const, 'DoesNotExist' as const) }),
  );
  const selector: fc.Arbitrary<StreamBudgetSpecPodSelector> = fc
    .record({
      matchLabels: fc.dictionary(key, value, { maxKeys: 2 }),
      matchExpressions: fc.array(expression, { maxLength: 3 }),
    })
    .filter((s) => labelSelector(s) !== '');

  await fc.assert(
    fc.asyncProperty(selector, async (s) => {
      const listed = await core.listNamespacedPod({ namespace, labelSelector: labelSelector(s) });
      const byServer = listed.items.map((p) => p.metadata?.name).sort();
      const bySluice = pods
        .filter((p) => selects(s, p.labels))
        .map((p) => p.name)
        .sort();
      assert.deepEqual(bySluice, byServer, labelSelector(s));
    }),
    { numRuns: 60 },
  );
});
