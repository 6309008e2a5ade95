/**
 * The official JavaScript SDK (@deepgram/sdk v5) against the emulator: a real client's
 * view of the protocol, and of a refusal at the limit.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { fluxSocket as sdkSocket, tone } from '../support/deepgram.js';
import { waitFor } from '../support/wait.js';
import { Emulator } from './server.js';

const emulators: Emulator[] = [];
after(() => Promise.all(emulators.map((e) => e.close())));

test('the JS SDK streams a tone, receives TurnInfo and closes with CloseStream', async () => {
  const e = await Emulator.start({ projects: [{ id: 'p', keys: ['sdk-key'], maxConcurrentStreams: 1 }] });
  emulators.push(e);
  const flux = await sdkSocket(e.url, 'sdk-key', 0);
  flux.socket.connect();
  await flux.socket.waitForOpen();
  for (const chunk of tone(1.5)) flux.socket.sendMedia(chunk);
  await waitFor('TurnInfo updates', () => flux.messages.filter((m) => m.type === 'TurnInfo').length >= 5);
  assert.equal(flux.messages[0]?.type, 'Connected');
  assert.equal(flux.messages[1]?.event, 'StartOfTurn');
  flux.socket.sendCloseStream({ type: 'CloseStream' });
  const { code } = await flux.closed;
  assert.equal(code, 1005, 'Flux closes without a status code');
  await waitFor('the emulator to see the end', () => e.stats().projects.p?.open === 0);
  assert.equal(e.stats().projects.p?.uncleanEnds, 0, 'a clean end');
});

test('the JS SDK fails to connect over the limit, with reconnects disabled', async () => {
  const e = await Emulator.start({ projects: [{ id: 'p', keys: ['sdk-key'], maxConcurrentStreams: 1 }] });
  emulators.push(e);
  const first = await sdkSocket(e.url, 'sdk-key', 0);
  first.socket.connect();
  await first.socket.waitForOpen();

  const second = await sdkSocket(e.url, 'sdk-key', 0);
  second.socket.connect();
  await second.closed;
  assert.ok(second.errors.length > 0, 'the SDK reported an error');
  assert.match(String(second.errors[0]?.message), /429/);
  assert.equal(second.messages.length, 0);
  assert.equal(e.stats().projects.p?.rejected.concurrency, 1);
  assert.equal(e.stats().projects.p?.accepted, 1, 'only the first stream was accepted');
  first.socket.close();
});
