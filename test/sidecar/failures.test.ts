/**
 * The sidecar against upstreams and clients that misbehave at the worst moments: a slot
 * is never leaked or freed too early, and no client is left hanging.
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import WebSocket from 'ws';
import { openStream, refusedHandshake } from '../support/stream-client.js';
import { waitFor } from '../support/wait.js';
import { auth, fluxPath, setup } from './fixture.js';

/** A raw TCP upstream that runs `behave` on each connection once the request head has arrived. */
async function rawUpstream(behave: (socket: Socket, request: string) => void): Promise<string> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    let head = '';
    socket.on('data', (chunk) => {
      if (head.includes('\r\n\r\n')) return;
      head += chunk.toString('latin1');
      if (head.includes('\r\n\r\n')) behave(socket, head);
    });
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `ws://127.0.0.1:${(server.address() as { port: number }).port}`;
}

/** Completes the WebSocket handshake by hand. */
function accept(socket: Socket, request: string): void {
  const key = /sec-websocket-key: (\S+)/i.exec(request)?.[1] ?? '';
  const answer = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  socket.write(
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${answer}\r\ndg-request-id: ${randomUUID()}\r\n\r\n`,
  );
}

describe('a misbehaving upstream', () => {
  test('that sends its close but never hangs up is cut after the close timeout, and its slot freed as clean', async () => {
    const upstream = await rawUpstream((socket, request) => {
      accept(socket, request);
      setTimeout(() => socket.write(Buffer.from([0x88, 0x02, 0x03, 0xe8])), 100);
      // ...and it never closes the connection, nor reads the answer.
    });
    const s = await setup({ spec: { upstream } });
    const stream = await openStream(`${s.url}${fluxPath}`, auth);
    assert.equal((await stream.closed).code, 1000);
    await waitFor('the cut to free the slot', () => s.gate().open === 0, { timeoutMs: 10_000 });
    assert.equal(s.gate().stale, 0, 'the upstream had closed the stream: nothing stays held');
    assert.equal(s.sidecar.admission.doubleReleases, 0);
  });

  test('that stalls in the middle of its refusal body gets the client a 502 and frees the slot', async () => {
    const upstream = await rawUpstream((socket) => {
      socket.write(
        'HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"err_',
      );
    });
    const s = await setup({ spec: { upstream } });
    const refusal = await refusedHandshake(`${s.url}${fluxPath}`, auth);
    assert.equal(refusal.status, 502);
    assert.deepEqual(s.gate(), { open: 0, stale: 0, inUse: 0 });
  });

  test('that vanishes in the middle of a frame leaves the client cut, never fed half a frame', async () => {
    const upstream = await rawUpstream((socket, request) => {
      accept(socket, request);
      // A text frame announcing 10 bytes, 4 of them sent, then the connection is gone.
      setTimeout(() => socket.end(Buffer.from([0x81, 0x0a, 0x61, 0x62, 0x63, 0x64]), () => socket.destroy()), 100);
    });
    const s = await setup({ spec: { upstream } });
    const received: Buffer[] = [];
    const stream = await openStream(`${s.url}${fluxPath}`, auth);
    stream.ws.on('message', (data) => received.push(data as Buffer));
    const closed = await stream.closed;
    assert.equal(closed.code, 1006, 'cut, not closed with a frame inside the unfinished one');
    assert.deepEqual(received, []);
    await waitFor('the slot to be settled', () => s.gate().open === 0);
    assert.equal(s.gate().stale, 1, 'lost without a close: held for the release delay');
  });
});

describe('a client that leaves early', () => {
  test('while queued leaves the queue at once, never reaching the upstream', async () => {
    const s = await setup({ spec: { maxConcurrentStreams: 1, admission: { queueTimeoutMs: 30_000 } } });
    const holder = await openStream(`${s.url}${fluxPath}`, auth);
    const leaver = new WebSocket(`${s.url}${fluxPath}`, auth);
    leaver.on('error', () => {});
    await waitFor('it to queue', () => s.sidecar.admission.queued === 1);
    leaver.terminate();
    await waitFor('it to leave the queue', () => s.sidecar.admission.queued === 0);
    holder.ws.close();
    await waitFor('the holder to end', () => s.gate().open === 0);
    assert.equal(s.upstream().accepted, 1, 'the leaver was never dialled');
  });

  test('while the upstream is dialled gives its slot up as held, since the upstream may count it', async () => {
    const s = await setup({
      emulatorConfig: { faults: [{ match: { tag: 'slow' }, action: { type: 'latency', ms: 3000 } }] },
    });
    const leaver = new WebSocket(`${s.url}${fluxPath}&tag=slow`, auth);
    leaver.on('error', () => {});
    await waitFor('the dial to start', () => s.gate().open === 1);
    leaver.terminate();
    await waitFor('the dial to be given up', () => s.gate().open === 0);
    assert.equal(s.gate().stale, 1);
  });

  test('a shutdown gives up dials in progress with a 503 and finishes promptly', async () => {
    const s = await setup({
      emulatorConfig: { faults: [{ match: { tag: 'slow' }, action: { type: 'latency', ms: 5000 } }] },
    });
    const pending = refusedHandshake(`${s.url}${fluxPath}&tag=slow`, auth);
    await waitFor('the dial to start', () => s.gate().open === 1);
    const started = performance.now();
    await s.sidecar.shutdown();
    assert.ok(performance.now() - started < 4000, 'the shutdown did not wait for the slow dial');
    assert.equal((await pending).status, 503);
  });
});

describe('credentials', () => {
  test('a key that cannot go in a header is refused with 500, and the slot is not lost', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-key-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const keyFile = join(dir, 'api-key');
    writeFileSync(keyFile, 'first-line\nsecond-line\n');
    const s = await setup({ env: { SLUICE_API_KEY_FILE: keyFile } });
    const refusal = await refusedHandshake(`${s.url}${fluxPath}`);
    assert.equal(refusal.status, 500);
    assert.equal(JSON.parse(refusal.body).code, 'SLUICE_E_CREDENTIALS');
    assert.ok(!refusal.body.includes('first-line'), 'the key itself is never shown');
    assert.deepEqual(s.gate(), { open: 0, stale: 0, inUse: 0 });
  });
});
