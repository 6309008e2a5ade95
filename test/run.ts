/**
 * `npm test`: starts one real control plane for the whole run, installs the CRDs,
 * then runs every test file with Node's test runner against it, and stops the
 * control plane however the run ends. Arguments narrow the run to given files.
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ControlPlane } from './cluster/control-plane.js';
import { crdManifests } from './cluster/crds.js';
import { repoRoot } from './cluster/process.js';
import { sharedKubeconfigVariable } from './cluster/test-cluster.js';

const testRoots = ['crds', 'operator', 'sidecar', 'test'];

function findTests(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : findTests(path);
    return entry.name.endsWith('.test.ts') ? [relative(repoRoot, path)] : [];
  });
}

const requested = process.argv.slice(2);
const files = requested.length > 0 ? requested : testRoots.flatMap((root) => findTests(join(repoRoot, root))).sort();

const started = Date.now();
const plane = await ControlPlane.start({ crds: crdManifests });
let stopping: Promise<void> | undefined;
const stop = () => {
  stopping ??= plane.stop();
  return stopping;
};
console.log(`Control plane ready at ${plane.server} in ${Date.now() - started} ms`);

let exitCode = 1;
try {
  // A test that hangs fails after five minutes instead of holding the run until CI gives up.
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-timeout=300000', ...files],
    {
      cwd: repoRoot,
      stdio: 'inherit',
      env: { ...process.env, [sharedKubeconfigVariable]: plane.kubeconfigPath },
    },
  );
  child.on('error', (error) => console.error(`Could not run the tests: ${error.message}`));
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      child.kill(signal);
    });
  }
  exitCode = await new Promise<number>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0))),
  );
} finally {
  await stop();
}
process.exit(exitCode);
