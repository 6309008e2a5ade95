/**
 * Real clients through the sidecar to the emulator: the official JS SDK (v5), with
 * reconnects off and with its default reconnect storm, and the Python SDK (v7).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { repoRoot } from '../cluster/process.js';
import { fluxSocket as sdkSocket, tone } from '../support/deepgram.js';
import { openStream } from '../support/stream-client.js';
import { waitFor } from '../support/wait.js';
import { auth, fluxPath, setup } from './fixture.js';

const run = promisify(execFile);
const python = join(repoRoot, '.cache', 'venv', 'bin', 'python');

test('the JS SDK streams through the sidecar and ends with 1000, so it does not reconnect', async () => {
  const s = await setup();
  const flux = await sdkSocket(s.url, 'emulator-key', 0);
  flux.socket.connect();
  await flux.socket.waitForOpen();
  for (const chunk of tone(1.5)) flux.socket.sendMedia(chunk);
  await waitFor('TurnInfo through the sidecar', () => flux.messages.filter((m) => m.type === 'TurnInfo').length >= 5);
  flux.socket.sendCloseStream({ type: 'CloseStream' });
  assert.equal((await flux.closed).code, 1000);
  await waitFor('the slot to be free', () => s.gate().open === 0);
  assert.equal(s.upstream().accepted, 1, 'no reconnect');
});

test('over the budget, JS SDK clients with default reconnect settings are refused locally, never upstream', async () => {
  const s = await setup({ spec: { maxConcurrentStreams: 1 } });
  const holder = await openStream(`${s.url}${fluxPath}`, auth);
  // Default settings: up to 30 reconnects, 1 to 10 s apart, on any close but 1000.
  const storm = await Promise.all(Array.from({ length: 10 }, () => sdkSocket(s.url, 'emulator-key')));
  for (const client of storm) client.socket.connect();
  // Each client reports the refusal and a close, which its reconnect rule then judges. The SDK
  // turns a refused handshake into a close 1000 of its own, which that rule takes as final: the
  // SDK has stopped retrying by its own account, so nothing is left to wait for, and every
  // attempt it made is counted below.
  const closes = await Promise.all(storm.map((c) => c.closed));
  assert.deepEqual(
    closes.map((c) => c.code),
    Array(10).fill(1000),
    'each SDK ended with a close it does not reconnect on',
  );
  const attempts = storm.flatMap((c) => c.errors);
  for (const error of attempts) assert.match(String(error.message), /429/);
  for (const client of storm) client.socket.close();
  const metrics = await (await fetch(`${s.admin}/metrics`)).text();
  const refused = /^sluice_sidecar_streams_rejected_total\{budget="default\/flux",reason="concurrency"\} (\d+)$/m.exec(
    metrics,
  );
  assert.equal(Number(refused?.[1]), attempts.length, 'every attempt the SDKs made was refused by the sidecar');
  assert.equal(attempts.length, 10);
  assert.equal(s.upstream().accepted, 1, 'only the holder ever reached the upstream');
  assert.deepEqual(s.upstream().rejected, {}, 'the upstream saw none of the attempts');
  holder.ws.close();
});

test('the Python SDK (v7) streams through the sidecar and closes with 1000', async () => {
  assert.ok(existsSync(python), `${python} is missing: run npm run setup`);
  const s = await setup();
  const { stdout } = await run(python, [join(repoRoot, 'test', 'sidecar', 'fixtures', 'python_flux.py'), s.url], {
    timeout: 60_000,
  });
  const result = JSON.parse(stdout.trim().split('\n').at(-1) as string) as {
    turnInfo: number;
    closeCode: number | null;
  };
  assert.ok(result.turnInfo >= 3, `TurnInfo messages: ${result.turnInfo}`);
  assert.equal(result.closeCode, 1000);
  await waitFor('the slot to be free', () => s.gate().open === 0);
  assert.equal(s.upstream().uncleanEnds, 0);
  assert.equal(s.sidecar.admission.doubleReleases, 0);
});
