/**
 * `npm run demo`, briefly: the whole fleet under shifting load prints its table and a
 * summary within the limit, Ctrl-C stops it cleanly, bad flags are refused, and no
 * process it started outlives it.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parseDemoOptions, UsageError } from './demo/options.js';
import { startScript } from './support/script.js';
import { waitFor } from './support/wait.js';

/** Processes whose environment carries `mark`: everything the demo started inherits it. */
function processesMarked(mark: string): number[] {
  if (!existsSync('/proc')) return [];
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry) && Number(entry) !== process.pid)
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/environ`, 'latin1').includes(mark);
      } catch {
        return false; // Gone, or not ours to read.
      }
    })
    .map(Number);
}

function startDemo(args: string[]) {
  const mark = `sluice-demo-test-${randomUUID()}`;
  const env: NodeJS.ProcessEnv = { ...process.env, DEMO_TEST_MARK: mark };
  // The demo starts its own control plane, whatever the test run shares.
  delete env.SLUICE_TEST_KUBECONFIG;
  return { demo: startScript('test/demo.ts', args, env), mark };
}

async function nothingLeft(mark: string): Promise<void> {
  await waitFor('every process the demo started to end', () => processesMarked(mark).length === 0, {
    timeoutMs: 20_000,
  });
}

test('the demo runs the fleet under shifting load and ends with a summary within the limit', async (t) => {
  const { demo, mark } = startDemo(['--duration', '15', '--pods', '2']);
  t.after(() => demo.stop());
  assert.equal(await demo.exited, 0, demo.output());
  const output = demo.output();
  assert.match(output, /^budget +limit +allocated +in use +queued +rejected +upstream in use/m);
  assert.match(output, /^flux +150 /m);
  for (const pod of ['voicebot-0', 'voicebot-1']) assert.match(output, new RegExp(`^${pod} +\\d+ +\\d+ `, 'm'));
  assert.match(output, /phase 3\/4: all busy, beyond the limit/);
  const [, peak, limit] = /upstream peak +(\d+) of (\d+): never over the limit/.exec(output) ?? [];
  assert.ok(peak !== undefined, `no summary line for the peak:\n${output}`);
  assert.equal(Number(limit), 150);
  assert.ok(Number(peak) <= 150 && Number(peak) > 0);
  assert.match(output, /upstream rejections +0 /);
  assert.match(output, /budget use +while demand exceeded the limit/);
  assert.match(output, /Stopped the load, the fleet and the control plane/);
  await nothingLeft(mark);
});

test('the demo stops everything on Ctrl-C and exits 0', async (t) => {
  const { demo, mark } = startDemo(['--duration', '300', '--pods', '1', '--limit', '10']);
  t.after(() => demo.stop());
  await waitFor('the first table', () => /^voicebot-0 /m.test(demo.output()), { timeoutMs: 120_000 });
  demo.child.kill('SIGINT');
  assert.equal(await demo.exited, 0, demo.output());
  assert.match(demo.output(), /\(interrupted\)/);
  assert.match(demo.output(), /Stopped the load, the fleet and the control plane/);
  await nothingLeft(mark);
});

test('the demo refuses unknown flags and bad values with exit code 2', async () => {
  const { demo } = startDemo(['--speed', '3']);
  assert.equal(await demo.exited, 2);
  assert.match(demo.output(), /Unknown option '--speed'/);
  assert.match(demo.output(), /Usage: npm run demo/);

  assert.deepEqual(parseDemoOptions([]), { durationSeconds: 60, pods: 4, limit: 150 });
  assert.equal(parseDemoOptions(['--help']), 'help');
  for (const [args, message] of [
    [['--pods', '0'], /--pods must be between 1 and 8, not 0/],
    [['--duration', 'soon'], /--duration must be a whole number, not "soon"/],
    [['--pods', '4', '--limit', '3'], /--limit must be between 4 and 500, not 3/],
    [['--duration'], /argument missing/],
    [['extra'], /Unexpected argument 'extra'/],
  ] as const) {
    assert.throws(
      () => parseDemoOptions(args),
      (error) => error instanceof UsageError && message.test(error.message),
    );
  }
});
