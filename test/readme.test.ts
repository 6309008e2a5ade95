/**
 * The README documents what users meet: every error code, metric and environment
 * variable the code defines appears in it.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from './cluster/process.js';

const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');

function sources(dir: string): string[] {
  return readdirSync(join(repoRoot, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.test.ts'))
    .map((e) => readFileSync(join(e.parentPath, e.name), 'utf8'));
}

const code = [...sources('operator'), ...sources('sidecar'), ...sources('crds/api'), ...sources('test/emulator')].join(
  '\n',
);

for (const [what, pattern] of [
  ['error code', /SLUICE_E_[A-Z_]+/g],
  ['metric', /sluice_(?:operator|sidecar|emulator)_[a-z_]+/g],
  ['environment variable', /SLUICE_(?!E_)[A-Z_]+/g],
] as const) {
  test(`every ${what} is documented in the README`, () => {
    const defined = [...new Set(code.match(pattern) ?? [])];
    assert.ok(defined.length > 0);
    const missing = defined.filter((name) => !readme.includes(name.replace(/_(bucket|sum|count)$/, '')));
    assert.deepEqual(missing, []);
  });
}
