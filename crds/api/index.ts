/**
 * The sluice API (group sluice.dev, version v1alpha1) as TypeScript: the types and
 * schemas derived from the CRD YAML in crds/, the file validator and manifest reader.
 * Imported by the operator and the sidecar alike.
 */
export * from './generated.js';
export * from './lease-protocol.js';
export { InvalidManifestError, parseStreamBudgets } from './manifests.js';
export type { JSONSchema, ValidationRule } from './schema.js';
export { selects } from './selector.js';
export {
  applyDefaults,
  type FieldError,
  type SluiceKind,
  type ValidationResult,
  validateResource,
} from './validate.js';
