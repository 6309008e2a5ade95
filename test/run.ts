/**
 * `npm test`: runs the unit tests first, on their own and isolated (no control plane, no
 * process, no socket), then starts one real control plane for the rest, installs the
 * CRDs, runs every other test file with Node's test runner against it, and stops the
 * control plane however the run ends. `--unit` runs the unit tests alone (`npm run
 * test:unit`); file arguments narrow the run to those files, against a control plane.
 *
 * Unit tests are the test files beside the code, in crds/, operator/ and sidecar/; the
 * tests under test/ work with real peers. test/support/unit-isolation.ts holds the unit
 * tests to that: one that starts a process or opens a socket fails, naming what it tried.
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ControlPlane } from './cluster/control-plane.js';
import { crdManifests } from './cluster/crds.js';
import { repoRoot } from './cluster/process.js';
import { sharedKubeconfigVariable } from './cluster/test-cluster.js';

const testRoots = ['crds', 'operator', 'sidecar', 'test'];
const unitRoots = ['crds', 'operator', 'sidecar'];

function findTests(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : findTests(path);
    return entry.name.endsWith('.test.ts') ? [relative(repoRoot, path)] : [];
  });
}

const isUnitTest = (file: string) => unitRoots.some((root) => file.startsWith(`${root}/`));

/** Runs test files with Node's test runner; resolves with its exit code. */
function runTests(files: string[], options: { unit: boolean; env: NodeJS.ProcessEnv }): Promise<number> {
  const args = options.unit
    ? ['--import', 'tsx', '--import', './test/support/unit-isolation.ts', '--test-timeout=60000']
    : // A test that hangs fails after five minutes instead of holding the run until CI gives up.
      ['--import', 'tsx', '--test-timeout=300000'];
  const child = spawn(process.execPath, [...args, '--test', '--test-reporter=spec', ...files], {
    cwd: repoRoot,
    stdio: 'inherit',
    env: options.env,
  });
  child.on('error', (error) => console.error(`Could not run the tests: ${error.message}`));
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  return new Promise<number>((resolve) =>
    child.on('exit', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      resolve(code ?? (signal ? 1 : 0));
    }),
  );
}

const args = process.argv.slice(2);
const unitOnly = args[0] === '--unit';
const requested = unitOnly ? args.slice(1) : args;
if (unitOnly && requested.length > 0) {
  console.error('--unit takes no files: it runs every test file in crds/, operator/ and sidecar/.');
  process.exit(2);
}
const all = testRoots.flatMap((root) => findTests(join(repoRoot, root))).sort();
const unitFiles = requested.length > 0 ? [] : all.filter(isUnitTest);
const planeFiles = requested.length > 0 ? requested : unitOnly ? [] : all.filter((file) => !isUnitTest(file));

let exitCode = 0;
if (unitFiles.length > 0) {
  const started = Date.now();
  const env = { ...process.env };
  delete env[sharedKubeconfigVariable];
  exitCode = await runTests(unitFiles, { unit: true, env });
  console.log(
    `Unit tests (${unitFiles.length} files) ${exitCode === 0 ? 'passed' : 'failed'} in ${Date.now() - started} ms`,
  );
}

if (planeFiles.length > 0) {
  const started = Date.now();
  const plane = await ControlPlane.start({ crds: crdManifests });
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= plane.stop();
    return stopping;
  };
  console.log(`Control plane ready at ${plane.server} in ${Date.now() - started} ms`);
  let planeExit = 1;
  try {
    planeExit = await runTests(planeFiles, {
      unit: false,
      env: { ...process.env, [sharedKubeconfigVariable]: plane.kubeconfigPath },
    });
  } finally {
    await stop();
  }
  exitCode ||= planeExit;
}
process.exit(exitCode);
