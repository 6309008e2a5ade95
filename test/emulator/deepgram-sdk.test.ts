/**
 * The official JavaScript SDK (@deepgram/sdk v5) against the emulator: a real client's
 * view of the protocol, and of a refusal at the limit.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { DeepgramClient } from '@deepgram/sdk';
import { waitFor } from '../support/wait.js';
import { Emulator } from './server.js';

const emulators: Emulator[] = [];
after(() => Promise.all(emulators.map((e) => e.close())));

/** `seconds` of a 440 Hz tone, 16 kHz linear16, in 80 ms chunks. */
function tone(seconds: number): Buffer[] {
  const samples = Math.round(seconds * 16000);
  const audio = Buffer.alloc(samples * 2);
  for (let i = 0; i < samples; i++)
    audio.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 16000)), i * 2);
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < audio.length; offset += 2560) chunks.push(audio.subarray(offset, offset + 2560));
  return chunks;
}

async function fluxSocket(e: Emulator) {
  const client = new DeepgramClient({ apiKey: 'sdk-key', baseUrl: e.url });
  const socket = await client.listen.v2.connect({
    model: 'flux-general-en',
    encoding: 'linear16',
    sample_rate: 16000,
    reconnectAttempts: 0,
  });
  const messages: { type: string; event?: string }[] = [];
  const errors: Error[] = [];
  socket.on('message', (message) => messages.push(message as { type: string; event?: string }));
  socket.on('error', (error) => errors.push(error));
  const closed = new Promise<{ code: number }>((resolve) => socket.on('close', (event) => resolve(event)));
  return { socket, messages, errors, closed };
}

test('the JS SDK streams a tone, receives TurnInfo and closes with CloseStream', async () => {
  const e = await Emulator.start({ projects: [{ id: 'p', keys: ['sdk-key'], maxConcurrentStreams: 1 }] });
  emulators.push(e);
  const flux = await fluxSocket(e);
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
  const first = await fluxSocket(e);
  first.socket.connect();
  await first.socket.waitForOpen();

  const second = await fluxSocket(e);
  second.socket.connect();
  await second.closed;
  assert.ok(second.errors.length > 0, 'the SDK reported an error');
  assert.match(String(second.errors[0]?.message), /429/);
  assert.equal(second.messages.length, 0);
  assert.equal(e.stats().projects.p?.rejected.concurrency, 1);
  assert.equal(e.stats().projects.p?.accepted, 1, 'only the first stream was accepted');
  first.socket.close();
});
