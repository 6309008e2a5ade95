/**
 * The package as installed: every bin entry exists after the build and runs.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { repoRoot } from './cluster/process.js';

const run = promisify(execFile);
const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
  version: string;
  bin: Record<string, string>;
};

for (const [name, path] of Object.entries(pkg.bin)) {
  test(`${name} is built and prints its version`, async () => {
    const source = readFileSync(join(repoRoot, path), 'utf8');
    assert.ok(source.startsWith('#!/usr/bin/env node'), `${path} starts with a shebang`);
    const { stdout } = await run(process.execPath, [join(repoRoot, path), '--version']);
    assert.match(stdout, new RegExp(`^${name} ${pkg.version.replaceAll('.', '\\.')}$`, 'm'));
  });
}
