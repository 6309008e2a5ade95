/**
 * `npm run cluster`: a control plane in the foreground, reachable with the kubeconfig
 * it writes, gone without a trace after Ctrl-C.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startScript } from '../support/script.js';
import { waitFor } from '../support/wait.js';
import { runTool } from './control-plane.js';

function startCli(kubeconfig: string) {
  return startScript('test/cluster/cli.ts', [], { ...process.env, KUBECONFIG: kubeconfig });
}

test('npm run cluster serves the sluice API until Ctrl-C, then leaves nothing behind', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
  try {
    const kubeconfig = join(dir, 'kubeconfig');
    const cli = startCli(kubeconfig);
    t.after(() => cli.stop());
    await waitFor('the control plane to be ready', () => cli.output().includes('Press Ctrl-C'), { timeoutMs: 60_000 });
    const logs = /logs in ([^)]+)\)/.exec(cli.output())?.[1] as string;
    assert.ok(existsSync(logs));

    const budgets = await runTool('kubectl', ['--kubeconfig', kubeconfig, 'get', 'streambudgets', '--all-namespaces']);
    assert.equal(budgets.code, 0, budgets.stderr);

    cli.child.kill('SIGINT');
    assert.equal(await cli.exited, 0, cli.output());
    assert.match(cli.output(), /Stopped; nothing left behind\./);
    assert.equal(existsSync(kubeconfig), false, 'the kubeconfig is removed');
    assert.equal(existsSync(logs), false, 'the control plane directory is removed');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('npm run cluster refuses to overwrite a kubeconfig it did not write', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
  try {
    const kubeconfig = join(dir, 'config');
    writeFileSync(kubeconfig, 'apiVersion: v1\nkind: Config\ncurrent-context: production\n');
    const cli = startCli(kubeconfig);
    t.after(() => cli.stop());
    assert.equal(await cli.exited, 2);
    assert.match(cli.output(), /refusing to overwrite/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
