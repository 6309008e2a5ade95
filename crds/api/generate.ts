/**
 * Derives the API's TypeScript module from the CRD YAML beside it: one interface per
 * object in each schema (defaults applied, as the API server serves them) and the
 * schemas themselves, for the file validator. `npm run generate` writes it; a test
 * fails when the committed file has drifted from the YAML.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import type { JSONSchema } from './schema.js';

const crdDir = join(dirname(fileURLToPath(import.meta.url)), '..');
export const crdFiles = ['streambudgets.sluice.dev.yaml', 'streamleases.sluice.dev.yaml'];
export const generatedPath = join(crdDir, 'api', 'generated.ts');

interface CustomResourceDefinition {
  spec: {
    group: string;
    names: { kind: string; plural: string; listKind: string; shortNames?: string[] };
    versions: { name: string; storage: boolean; schema: { openAPIV3Schema: JSONSchema } }[];
  };
}

export function readCrds(): CustomResourceDefinition[] {
  return crdFiles.map((file) => parse(readFileSync(join(crdDir, file), 'utf8')) as CustomResourceDefinition);
}

function pascal(words: string[]): string {
  return words.map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('');
}

function docComment(text: string | undefined, indent: string): string {
  if (!text) return '';
  const lines = text.trim().split('\n');
  if (lines.length === 1) return `${indent}/** ${lines[0]} */\n`;
  return `${indent}/**\n${lines.map((l) => `${indent} * ${l}`).join('\n')}\n${indent} */\n`;
}

/** Emits interfaces for every object schema reachable from `schema`, named by path. */
class TypeEmitter {
  readonly #out: string[] = [];

  emitObject(name: string, schema: JSONSchema, extra = ''): string {
    const body: string[] = [];
    if (extra) body.push(extra);
    const required = new Set(schema.required ?? []);
    for (const [key, prop] of Object.entries(schema.properties ?? {})) {
      if (key === 'apiVersion' || key === 'kind' || key === 'metadata') continue;
      // Defaulted fields are always present once the API server (or the validator) has read them.
      const optional = !required.has(key) && prop.default === undefined;
      body.push(
        `${docComment(prop.description, '  ')}  ${key}${optional ? '?' : ''}: ${this.typeOf(name, key, prop)};`,
      );
    }
    this.#out.push(`${docComment(schema.description, '')}export interface ${name} {\n${body.join('\n')}\n}\n`);
    return name;
  }

  typeOf(parent: string, key: string, schema: JSONSchema): string {
    if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(' | ');
    switch (schema.type) {
      case 'string':
        return 'string';
      case 'integer':
      case 'number':
        return 'number';
      case 'boolean':
        return 'boolean';
      case 'array': {
        const item = this.typeOf(parent, key.replace(/s$/, ''), schema.items as JSONSchema);
        return item.includes(' ') ? `(${item})[]` : `${item}[]`;
      }
      case 'object':
        if (schema.properties) return this.emitObject(parent + pascal([key]), schema);
        if (schema.additionalProperties && typeof schema.additionalProperties === 'object') {
          return `Record<string, ${this.typeOf(parent, key, schema.additionalProperties)}>`;
        }
        return 'Record<string, unknown>';
      default:
        throw new Error(`${parent}.${key}: no TypeScript type for schema type ${String(schema.type)}`);
    }
  }

  toString(): string {
    return this.#out.join('\n');
  }
}

export function generate(): string {
  const crds = readCrds();
  const emitter = new TypeEmitter();
  const resources: string[] = [];
  const schemas: string[] = [];
  for (const crd of crds) {
    const { group, names } = crd.spec;
    const version = crd.spec.versions.find((v) => v.storage);
    if (!version) throw new Error(`${names.plural}.${group}: no storage version`);
    const root = version.schema.openAPIV3Schema;
    const apiVersion = `${group}/${version.name}`;
    emitter.emitObject(
      names.kind,
      root,
      `  apiVersion: ${JSON.stringify(apiVersion)};\n  kind: ${JSON.stringify(names.kind)};\n  metadata: V1ObjectMeta;`,
    );
    const lower = names.kind.charAt(0).toLowerCase() + names.kind.slice(1);
    resources.push(
      `/** Where ${names.kind} objects live in the API. */\n` +
        `export const ${lower}Resource = ${JSON.stringify({ group, version: version.name, plural: names.plural, kind: names.kind, apiVersion })} as const;\n`,
    );
    schemas.push(`  ${names.kind}: { ...${lower}Resource, schema: ${JSON.stringify(root)} as JSONSchema },`);
  }
  return [
    '// Generated from the CRD YAML in crds/ by `npm run generate`. Do not edit by hand.',
    "import type { V1ObjectMeta } from '@kubernetes/client-node';",
    "import type { JSONSchema } from './schema.js';",
    '',
    resources.join('\n'),
    emitter.toString(),
    '/** Each kind with its openAPIV3Schema, exactly as in the CRD YAML. */',
    'export const apiResources = {',
    ...schemas,
    '} as const;',
    '',
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(generatedPath, generate());
  console.log(`Wrote ${generatedPath}`);
}
