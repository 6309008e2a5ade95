/**
 * Reads sluice manifests from YAML text (one or more documents), validated and with
 * defaults applied, for programs that run without an API server.
 */
import { parseAllDocuments } from 'yaml';
import type { StreamBudget } from './generated.js';
import { type FieldError, validateResource } from './validate.js';

/** A manifest file that does not hold valid StreamBudgets; `problems` says where and why. */
export class InvalidManifestError extends Error {
  readonly code = 'SLUICE_E_INVALID_MANIFEST';

  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`${source} is not a valid list of StreamBudgets:\n  ${problems.join('\n  ')}`);
    this.name = 'InvalidManifestError';
  }
}

/**
 * Parses every YAML document in `text` as a StreamBudget. Empty documents are skipped;
 * anything else that is not a valid StreamBudget fails the whole file, so a typo never
 * silently drops a budget. Names must be unique within a namespace.
 */
export function parseStreamBudgets(text: string, source = 'manifest'): StreamBudget[] {
  const problems: string[] = [];
  const budgets: StreamBudget[] = [];
  const seen = new Set<string>();
  // YAML 1.1, as kubectl reads manifests: `yes` is a boolean and 0150 an octal number there too.
  parseAllDocuments(text, { version: '1.1', merge: true }).forEach((document, index) => {
    const where = `document ${index + 1}`;
    if (document.errors.length > 0) {
      for (const error of document.errors) problems.push(`${where}: ${error.message.split('\n')[0]}`);
      return;
    }
    const object: unknown = document.toJS();
    if (object === null || object === undefined) return;
    if (typeof object === 'object' && (object as { kind?: unknown }).kind !== 'StreamBudget') {
      problems.push(
        `${where}: kind: Unsupported value: ${JSON.stringify((object as { kind?: unknown }).kind)}: supported values: "StreamBudget"`,
      );
      return;
    }
    const result = validateResource<StreamBudget>(object);
    if (!result.ok) {
      const name = (object as { metadata?: { name?: unknown } }).metadata?.name;
      const label = typeof name === 'string' ? `${where} (${name})` : where;
      for (const error of result.errors as FieldError[]) problems.push(`${label}: ${error.message}`);
      return;
    }
    const key = `${result.value.metadata.namespace ?? ''}/${result.value.metadata.name}`;
    if (seen.has(key)) {
      problems.push(`${where}: metadata.name: Duplicate value: ${JSON.stringify(result.value.metadata.name)}`);
      return;
    }
    seen.add(key);
    budgets.push(result.value);
  });
  if (problems.length === 0 && budgets.length === 0) problems.push('no StreamBudget found');
  if (problems.length > 0) throw new InvalidManifestError(source, problems);
  return budgets;
}
