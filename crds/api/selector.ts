/**
 * Label selectors as Kubernetes reads them, for a budget's podSelector: the operator
 * uses it to find a budget's pods, the sidecar to find the budgets of its own pod.
 */
import type { StreamBudgetSpecPodSelector } from './generated.js';

/**
 * True when a pod with `labels` is selected: every matchLabels pair is present and
 * every expression holds (In, NotIn, Exists, DoesNotExist, as Kubernetes reads them:
 * NotIn holds for a pod without the key). An empty selector selects every pod, as in
 * Kubernetes; the CRD refuses one.
 */
export function selects(selector: StreamBudgetSpecPodSelector, labels: Record<string, string>): boolean {
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[key] !== value) return false;
  }
  for (const { key, operator, values = [] } of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, key);
    const value = labels[key];
    switch (operator) {
      case 'In':
        if (!has || !values.includes(value as string)) return false;
        break;
      case 'NotIn':
        if (has && values.includes(value as string)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        // An operator this version does not know selects nothing, rather than too much.
        return false;
    }
  }
  return true;
}
