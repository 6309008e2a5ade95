/**
 * Validates sluice manifests read from files (the sidecar's standalone mode) the way
 * the Kubernetes API server validates them on create: defaults applied, then the CRD's
 * structural schema and its CEL rules, with field paths and messages in the API
 * server's style. A parity test holds the two to the same verdicts.
 */
import { celEnvironment } from './cel.js';
import { apiResources } from './generated.js';
import type { JSONSchema, ValidationRule } from './schema.js';

/** The kind of problem, named as the API server's field error types are. */
export type FieldErrorType =
  | 'FieldValueRequired'
  | 'FieldValueInvalid'
  | 'FieldValueNotSupported'
  | 'FieldValueTypeInvalid'
  | 'FieldValueTooLong'
  | 'FieldValueTooMany'
  | 'FieldValueDuplicate'
  | 'FieldValueForbidden'
  | 'FieldValueUnknown';

/** One problem with one field. */
export interface FieldError {
  /** Path of the offending field, e.g. `spec.newSessions.autoscale.maxPerMinute`. */
  field: string;
  type: FieldErrorType;
  /** The whole sentence, starting with the field's path. */
  message: string;
}

export type ValidationResult<T> = { ok: true; value: T } | { ok: false; errors: FieldError[] };

/** The kinds of the sluice API. */
export type SluiceKind = keyof typeof apiResources;

function isSluiceKind(kind: unknown): kind is SluiceKind {
  return typeof kind === 'string' && Object.hasOwn(apiResources, kind);
}

const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const dns1123Label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const rfc3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isObject(value: unknown): value is Record<string, Json> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** How the API server prints a value inside a message. */
function show(value: unknown): string {
  if (value === undefined) return '"null"';
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'string') return JSON.stringify(value);
  return JSON.stringify(Array.isArray(value) ? 'array' : value === null ? 'null' : 'object');
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function child(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/**
 * Fills in schema defaults, recursively, on a copy; the API server does this before
 * validating. As there, a null field (none of ours is nullable) is dropped, or replaced
 * by its default when it has one.
 */
export function applyDefaults(schema: JSONSchema, value: Json | undefined): Json | undefined {
  if (value === undefined || value === null) {
    if (schema.default === undefined) return undefined;
    value = structuredClone(schema.default) as Json;
  }
  if (schema.type === 'object' && isObject(value)) {
    const out: Record<string, Json> = { ...value };
    for (const [key, prop] of Object.entries(schema.properties ?? {})) {
      const next = applyDefaults(prop, out[key]);
      if (next === undefined) delete out[key];
      else out[key] = next;
    }
    if (typeof schema.additionalProperties === 'object') {
      for (const key of Object.keys(out)) {
        if (!schema.properties?.[key]) out[key] = applyDefaults(schema.additionalProperties, out[key]) as Json;
      }
    }
    return out;
  }
  if (schema.type === 'array' && Array.isArray(value) && schema.items) {
    const items = schema.items;
    return value.map((item) => applyDefaults(items, item) as Json);
  }
  return value;
}

/** Converts a JSON value into CEL's: integers become int (bigint) where the schema says so. */
function toCel(schema: JSONSchema, value: Json): unknown {
  if (schema.type === 'integer' && typeof value === 'number') return BigInt(value);
  if (Array.isArray(value)) return value.map((item) => toCel(schema.items ?? {}, item));
  if (isObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      const prop =
        schema.properties?.[key] ??
        (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : {});
      out[key] = toCel(prop, item);
    }
    return out;
  }
  return value;
}

interface PendingRule {
  schema: JSONSchema;
  rule: ValidationRule;
  value: Json;
  path: string;
  oldValue: Json | undefined;
}

/**
 * Compiles a schema pattern as Go's RE2 reads it. The one difference that matters here:
 * RE2's \\s is ASCII white space only, JavaScript's (with the u flag) Unicode's too.
 */
function re2(pattern: string): RegExp {
  let out = '';
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '\\') {
      const next = pattern[i + 1] ?? '';
      i += 1;
      if (next === 's') out += inClass ? '\\t\\n\\f\\r ' : '[\\t\\n\\f\\r ]';
      else if (next === 'S') out += inClass ? '\\S' : '[^\\t\\n\\f\\r ]';
      else out += c + next;
      continue;
    }
    if (c === '[') inClass = true;
    else if (c === ']') inClass = false;
    out += c;
  }
  return new RegExp(out, 'u');
}

const patterns = new Map<string, RegExp>();

function compiled(pattern: string): RegExp {
  let regExp = patterns.get(pattern);
  if (!regExp) {
    regExp = re2(pattern);
    patterns.set(pattern, regExp);
  }
  return regExp;
}

/** Errors after which the API server does not run CEL rules at all. */
const blocking = new Set<FieldErrorType>([
  'FieldValueNotSupported',
  'FieldValueRequired',
  'FieldValueTooLong',
  'FieldValueTooMany',
  'FieldValueTypeInvalid',
  'FieldValueUnknown',
]);

class SchemaValidator {
  readonly errors: FieldError[] = [];
  readonly #rules: PendingRule[] = [];

  #add(field: string, type: FieldErrorType, detail: string): void {
    this.errors.push({ field, type, message: `${field}: ${detail}` });
  }

  #invalid(field: string, value: unknown, detail: string): void {
    this.#add(field, 'FieldValueInvalid', `Invalid value: ${show(value)}: ${detail}`);
  }

  validate(schema: JSONSchema, value: Json, path: string, oldValue: Json | undefined): void {
    if (!this.#checkType(schema, value, path)) return;

    if (schema.enum && !schema.enum.some((allowed) => allowed === value)) {
      const supported = schema.enum.map((v) => JSON.stringify(v)).join(', ');
      this.#add(path, 'FieldValueNotSupported', `Unsupported value: ${show(value)}: supported values: ${supported}`);
    }
    if (typeof value === 'number') this.#checkNumber(schema, value, path);
    if (typeof value === 'string') this.#checkString(schema, value, path);
    if (Array.isArray(value)) this.#checkArray(schema, value, path, oldValue);
    if (isObject(value)) this.#checkObject(schema, value, path, oldValue);
    for (const rule of schema['x-kubernetes-validations'] ?? [])
      this.#rules.push({ schema, rule, value, path, oldValue });
  }

  /** Runs the CEL rules found by `validate`, unless an error blocks them: like the API server. */
  checkRules(): void {
    if (this.errors.some((error) => blocking.has(error.type))) {
      this.#add(
        '<nil>',
        'FieldValueInvalid',
        'Invalid value: "null": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation',
      );
      return;
    }
    for (const { schema, rule, value, path, oldValue } of this.#rules)
      this.#checkRule(schema, rule, value, path, oldValue);
  }

  #checkType(schema: JSONSchema, value: Json, path: string): boolean {
    const actual = typeName(value);
    const expected = schema.type;
    const fits =
      expected === undefined ||
      actual === expected ||
      (expected === 'number' && actual === 'integer') ||
      (expected === 'object' && actual === 'object');
    if (!fits) {
      this.#add(
        path,
        'FieldValueTypeInvalid',
        `Invalid value: ${show(value)}: ${path} in body must be of type ${expected}: ${JSON.stringify(actual)}`,
      );
    }
    return fits;
  }

  #checkNumber(schema: JSONSchema, value: number, path: string): void {
    if (schema.minimum !== undefined && value < schema.minimum) {
      this.#invalid(path, value, `${path} in body should be greater than or equal to ${schema.minimum}`);
    }
    if (schema.maximum !== undefined && value > schema.maximum) {
      this.#invalid(path, value, `${path} in body should be less than or equal to ${schema.maximum}`);
    }
  }

  #checkString(schema: JSONSchema, value: string, path: string): void {
    const length = [...value].length;
    if (schema.minLength !== undefined && length < schema.minLength) {
      this.#invalid(path, value, `${path} in body should be at least ${schema.minLength} chars long`);
    }
    if (schema.maxLength !== undefined && length > schema.maxLength) {
      this.#add(path, 'FieldValueTooLong', `Too long: may not be more than ${schema.maxLength} bytes`);
    }
    if (schema.pattern !== undefined && !compiled(schema.pattern).test(value)) {
      this.#invalid(path, value, `${path} in body should match '${schema.pattern}'`);
    }
    if (schema.format === 'date-time' && !rfc3339.test(value)) {
      this.#invalid(path, value, `${path} in body must be of type date-time: ${JSON.stringify(value)}`);
    }
  }

  #checkArray(schema: JSONSchema, value: Json[], path: string, oldValue: Json | undefined): void {
    if (schema.minItems !== undefined && value.length < schema.minItems) {
      this.#invalid(path, value.length, `${path} in body should have at least ${schema.minItems} items`);
    }
    if (schema.maxItems !== undefined && value.length > schema.maxItems) {
      this.#add(path, 'FieldValueTooMany', `Too many: ${value.length}: must have at most ${schema.maxItems} items`);
    }
    const listType = schema['x-kubernetes-list-type'];
    if (listType === 'set' || listType === 'map') {
      const keys = schema['x-kubernetes-list-map-keys'] ?? [];
      const seen = new Set<string>();
      value.forEach((item, index) => {
        const identity = JSON.stringify(
          listType === 'map' && isObject(item) ? keys.map((k) => (item as Record<string, Json>)[k]) : item,
        );
        if (seen.has(identity)) this.#add(`${path}[${index}]`, 'FieldValueDuplicate', `Duplicate value: ${identity}`);
        seen.add(identity);
      });
    }
    const oldItems = Array.isArray(oldValue) ? oldValue : [];
    value.forEach((item, index) => {
      this.validate(schema.items ?? {}, item, `${path}[${index}]`, oldItems[index]);
    });
  }

  #checkObject(schema: JSONSchema, value: Record<string, Json>, path: string, oldValue: Json | undefined): void {
    const old = isObject(oldValue) ? oldValue : {};
    for (const key of schema.required ?? []) {
      if (value[key] === undefined) this.#add(child(path, key), 'FieldValueRequired', 'Required value');
    }
    if (schema.maxProperties !== undefined && Object.keys(value).length > schema.maxProperties) {
      const count = Object.keys(value).length;
      this.#add(path, 'FieldValueTooMany', `Too many: ${count}: must have at most ${schema.maxProperties} items`);
    }
    const declared = schema.properties;
    const extra = typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined;
    for (const [key, item] of Object.entries(value)) {
      const prop = declared?.[key] ?? extra;
      if (prop) {
        this.validate(prop, item, child(path, key), old[key]);
      } else if (declared || schema.additionalProperties === false) {
        this.#add(
          child(path, key),
          'FieldValueUnknown',
          `Unknown field: "${child(path, key)}" is not declared in the schema`,
        );
      }
    }
  }

  #checkRule(schema: JSONSchema, rule: ValidationRule, value: Json, path: string, oldValue: Json | undefined): void {
    // Transition rules (those reading oldSelf) only run on updates.
    const transition = /\boldSelf\b/.test(rule.rule);
    if (transition && oldValue === undefined) return;
    const field = path + (rule.fieldPath ?? '');
    let passed: unknown;
    try {
      passed = celEnvironment.evaluate(rule.rule, {
        self: toCel(schema, value),
        oldSelf: oldValue === undefined ? null : toCel(schema, oldValue),
      });
    } catch (cause) {
      // An evaluation error is reported where the rule sits, not at its fieldPath.
      this.#invalid(path, typeName(value), `${(cause as Error).message} evaluating rule: ${rule.rule}`);
      return;
    }
    if (passed === true) return;
    const message = rule.message ?? `failed rule: ${rule.rule}`;
    switch (rule.reason) {
      case 'FieldValueRequired':
        this.#add(field, 'FieldValueRequired', `Required value: ${message}`);
        break;
      case 'FieldValueForbidden':
        this.#add(field, 'FieldValueForbidden', `Forbidden: ${message}`);
        break;
      case 'FieldValueDuplicate':
        this.#add(field, 'FieldValueDuplicate', `Duplicate value: ${message}`);
        break;
      default:
        this.#invalid(field, typeName(value), message);
    }
  }

  /** apiVersion, kind and the parts of metadata the API server checks on every object. */
  checkEnvelope(kind: string, apiVersion: string, object: Record<string, Json>): void {
    if (object.apiVersion === undefined) {
      this.#add('apiVersion', 'FieldValueRequired', 'Required value');
    } else if (object.apiVersion !== apiVersion) {
      this.#add(
        'apiVersion',
        'FieldValueNotSupported',
        `Unsupported value: ${show(object.apiVersion)}: supported values: "${apiVersion}"`,
      );
    }
    if (object.kind === undefined) {
      this.#add('kind', 'FieldValueRequired', 'Required value');
    } else if (object.kind !== kind) {
      this.#add(
        'kind',
        'FieldValueNotSupported',
        `Unsupported value: ${show(object.kind)}: supported values: "${kind}"`,
      );
    }
    const metadata = object.metadata;
    if (!isObject(metadata)) {
      this.#add('metadata', 'FieldValueRequired', 'Required value');
      return;
    }
    const name = metadata.name;
    if (typeof name !== 'string' || name === '') {
      if (typeof metadata.generateName !== 'string' || metadata.generateName === '') {
        this.#add('metadata.name', 'FieldValueRequired', 'Required value: name or generateName is required');
      }
    } else if (name.length > 253 || !dns1123Subdomain.test(name)) {
      this.#invalid(
        'metadata.name',
        name,
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
      );
    }
    for (const key of ['labels', 'annotations'] as const) {
      const map = metadata[key];
      if (map !== undefined && (!isObject(map) || !Object.values(map).every((v) => typeof v === 'string'))) {
        this.#add(`metadata.${key}`, 'FieldValueTypeInvalid', `Invalid value: ${show(map)}: must be a map of strings`);
      }
    }
    const finalizers = metadata.finalizers;
    if (finalizers !== undefined && (!Array.isArray(finalizers) || !finalizers.every((f) => typeof f === 'string'))) {
      this.#add(
        'metadata.finalizers',
        'FieldValueTypeInvalid',
        `Invalid value: ${show(finalizers)}: must be a list of strings`,
      );
    }
    const namespace = metadata.namespace;
    if (
      namespace !== undefined &&
      (typeof namespace !== 'string' || namespace.length > 63 || !dns1123Label.test(namespace))
    ) {
      this.#invalid(
        'metadata.namespace',
        namespace,
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'",
      );
    }
  }
}

/**
 * Validates one object of a sluice kind as the API server would on create (or on
 * update, given the stored object as `oldObject`, so transition rules run too).
 * On success the value has every default filled in. Both kinds have a status
 * subresource, so a create ignores status, as the API server does.
 */
export function validateResource<T>(object: unknown, oldObject?: unknown): ValidationResult<T> {
  const validator = new SchemaValidator();
  if (!isObject(object)) {
    validator.validate({ type: 'object' }, object as Json, '<root>', undefined);
    return { ok: false, errors: validator.errors };
  }
  const kind = object.kind;
  if (!isSluiceKind(kind)) {
    const known = Object.keys(apiResources)
      .map((k) => JSON.stringify(k))
      .join(', ');
    return {
      ok: false,
      errors: [
        {
          field: 'kind',
          type: 'FieldValueNotSupported',
          message: `kind: Unsupported value: ${show(object.kind)}: supported values: ${known}`,
        },
      ],
    };
  }
  const { apiVersion, schema } = apiResources[kind];
  validator.checkEnvelope(kind, apiVersion, object);
  const { status: _ignoredOnCreate, ...withoutStatus } = object;
  const defaulted = applyDefaults(schema, oldObject === undefined ? withoutStatus : object) as Record<string, Json>;
  const oldDefaulted = isObject(oldObject) ? (applyDefaults(schema, oldObject as Json) as Json) : undefined;
  const { metadata: _metadata, ...rest } = defaulted;
  const { metadata: _oldMetadata, ...oldRest } = isObject(oldDefaulted) ? oldDefaulted : {};
  validator.validate(schema, rest, '', isObject(oldDefaulted) ? oldRest : undefined);
  validator.checkRules();
  if (validator.errors.length > 0) return { ok: false, errors: validator.errors };
  return { ok: true, value: defaulted as T };
}
