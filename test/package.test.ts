/**
 * The package as installed: every bin entry exists after the build and runs as a command.
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
    assert.match(source, /^#!\/usr\/bin\/env (-S )?node( |\n)/, `${path} starts with a shebang that runs node`);
    // Run as an installed bin runs: through its shebang, with the flags it names there.
    const { stdout } = await run(join(repoRoot, path), ['--version']);
    assert.match(stdout, new RegExp(`^${name} ${pkg.version.replaceAll('.', '\\.')}$`, 'm'));
  });
}
