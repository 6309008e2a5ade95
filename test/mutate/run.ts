/**
 * `npm run mutate`: removes each safety rule from the product in turn, in a copy of the
 * source, and runs the tests that stand guard over it. A rule whose removal no test
 * notices is not proven by the tests; the run then exits 1. Prints one row per rule: what
 * was removed, and which tests failed. Arguments narrow the run to rules by name.
 */
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../cluster/process.js';
import { type Mutation, mutations } from './mutations.js';

const properties = 'test/operator/allocation-properties.test.ts';

interface Outcome {
  mutation: Mutation;
  failed: string[];
  error?: string;
}

/** Runs `files` with Node's test runner in `dir`; the names of the tests that failed. */
function failingTests(dir: string, files: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', ...files], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Properties try five times their usual cases: a removal must be caught, not just likely to be.
      env: { ...process.env, NODE_OPTIONS: '', SLUICE_PROPERTY_RUNS_FACTOR: '5' },
    });
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 10 * 60_000);
    child.on('error', reject);
    child.on('exit', () => {
      clearTimeout(timer);
      // Leaf tests only: "not ok N - name" lines that are not suites of failed subtests.
      const lines = out.split('\n');
      const failed: string[] = [];
      for (let i = 0; i < lines.length; i++) {
        const match = /^(\s*)not ok \d+ - (.*)$/.exec(lines[i] as string);
        if (!match) continue;
        const detail = lines.slice(i + 1, i + 8).join('\n');
        if (detail.includes("failureType: 'subtestsFailed'")) continue;
        failed.push((match[2] as string).trim());
      }
      resolve(failed);
    });
  });
}

/** A copy of the sources with one rule removed; node_modules is shared. */
function mutatedCopy(mutation: Mutation): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-mutant-'));
  for (const entry of ['crds', 'operator', 'sidecar', 'test', 'package.json', 'tsconfig.json']) {
    cpSync(join(repoRoot, entry), join(dir, entry), { recursive: true });
  }
  symlinkSync(join(repoRoot, 'node_modules'), join(dir, 'node_modules'));
  const file = join(dir, mutation.file);
  const source = readFileSync(file, 'utf8');
  const count = source.split(mutation.find).length - 1;
  if (count !== 1) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`${mutation.rule}: expected the rule once in ${mutation.file}, found it ${count} times`);
  }
  writeFileSync(file, source.replace(mutation.find, mutation.replace));
  return dir;
}

const wanted = process.argv.slice(2);
const selected = wanted.length > 0 ? mutations.filter((m) => wanted.includes(m.rule)) : mutations;
const outcomes: Outcome[] = [];
for (const mutation of selected) {
  let dir: string | undefined;
  try {
    dir = mutatedCopy(mutation);
    const failed = await failingTests(dir, mutation.tests ?? [properties]);
    outcomes.push({ mutation, failed });
    process.stderr.write(
      `${mutation.rule}: ${failed.length > 0 ? `caught by ${failed.length} test(s)` : 'NOT CAUGHT'}\n`,
    );
  } catch (error) {
    outcomes.push({ mutation, failed: [], error: (error as Error).message });
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

console.log('| rule | removed | failed |');
console.log('|---|---|---|');
for (const { mutation, failed, error } of outcomes) {
  const verdict = error ? `error: ${error}` : failed.length > 0 ? failed.join('; ') : '**nothing: not proven**';
  console.log(`| ${mutation.rule} | ${mutation.removed} | ${verdict} |`);
}
process.exit(outcomes.every((o) => o.failed.length > 0 && !o.error) ? 0 : 1);
