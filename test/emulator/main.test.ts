/**
 * `npm run emulator`: the emulator as a process.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../cluster/process.js';
import { startScript } from '../support/script.js';
import { waitFor } from '../support/wait.js';

function start(args: string[]) {
  return startScript('test/emulator/main.ts', args);
}

test('serves the example configuration and stops on SIGTERM', async (t) => {
  const emulator = start(['--port', '0', '--config', join(repoRoot, 'test', 'emulator', 'emulator.example.yaml')]);
  t.after(() => emulator.stop());
  const url = await waitFor(
    'the emulator to listen',
    () => /Control: (http:\/\/[^/]+)\/stats/.exec(emulator.output())?.[1],
  );
  const stats = (await (await fetch(`${url}/stats`)).json()) as {
    projects: Record<string, { limit: number; enforce: boolean }>;
  };
  assert.deepEqual(Object.keys(stats.projects), ['flux-prod', 'nova-prod']);
  assert.equal(stats.projects['nova-prod']?.enforce, false);
  emulator.child.kill('SIGTERM');
  assert.equal(await emulator.exited, 0);
});

test('refuses a bad configuration with exit code 2 and every problem', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-emulator-'));
  try {
    const config = join(dir, 'bad.yaml');
    writeFileSync(config, 'projects:\n  - id: p\n    keys: []\n    maxConcurrentStreams: -1\n');
    const emulator = start(['--config', config]);
    t.after(() => emulator.stop());
    assert.equal(await emulator.exited, 2);
    assert.match(emulator.output(), /projects\[0\]\.keys: must be a non-empty list/);
    assert.match(emulator.output(), /projects\[0\]\.maxConcurrentStreams: must be between 1 and 10000000, got -1/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
