/**
 * Which budgets a stream is charged to: every budget whose `match` covers the stream's
 * path and its `model` query parameter (`*` in a model pattern matches any run of
 * characters). A budget without `match` covers every stream.
 */
import type { StreamBudgetSpecMatch } from '../crds/api/index.js';

export interface StreamRoute {
  path: string;
  model: string | undefined;
}

function globToRegExp(pattern: string): RegExp {
  const escaped = pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${escaped.join('.*')}$`);
}

/** A compiled `match`: tests a route quickly, many times. */
export class RouteMatcher {
  readonly #paths: Set<string> | undefined;
  readonly #models: RegExp[] | undefined;

  constructor(match: StreamBudgetSpecMatch | undefined) {
    this.#paths = match?.paths ? new Set(match.paths) : undefined;
    this.#models = match?.models?.map(globToRegExp);
  }

  covers(route: StreamRoute): boolean {
    if (this.#paths && !this.#paths.has(route.path)) return false;
    if (this.#models) {
      const model = route.model;
      if (model === undefined || !this.#models.some((re) => re.test(model))) return false;
    }
    return true;
  }
}
