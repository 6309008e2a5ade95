/**
 * The sidecar against upstreams and clients that misbehave at the worst moments: a slot
 * is never leaked or freed too early, and no client is left hanging.
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import WebSocket from 'ws';
import { openStream, rawHandshake, refusedHandshake } from '../support/stream-client.js';
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
    let upstreamSocket: Socket | undefined;
    const upstream = await rawUpstream((socket, request) => {
      accept(socket, request);
      upstreamSocket = socket;
    });
    const s = await setup({ spec: { upstream } });
    const stream = await openStream(`${s.url}${fluxPath}`, auth);
    // Once the stream is relayed, the upstream's close; it never closes the connection, nor reads the answer.
    upstreamSocket?.write(Buffer.from([0x88, 0x02, 0x03, 0xe8]));
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
    let upstreamSocket: Socket | undefined;
    const upstream = await rawUpstream((socket, request) => {
      accept(socket, request);
      upstreamSocket = socket;
    });
    const s = await setup({ spec: { upstream } });
    const received: Buffer[] = [];
    const stream = await openStream(`${s.url}${fluxPath}`, auth);
    stream.ws.on('message', (data) => received.push(data as Buffer));
    // Once the stream is relayed: a text frame announcing 10 bytes, 4 of them sent, then the connection is gone.
    upstreamSocket?.end(Buffer.from([0x81, 0x0a, 0x61, 0x62, 0x63, 0x64]), () => upstreamSocket?.destroy());
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
      // A close timeout longer than the upstream's delay: a shutdown that waited for the dial would outlast it.
      env: { SLUICE_CLOSE_TIMEOUT_MS: '60000' },
      emulatorConfig: { faults: [{ match: { tag: 'slow' }, action: { type: 'latency', ms: 10_000 } }] },
    });
    // A client as patient as the sidecar: only the shutdown can end its wait.
    const pending = refusedHandshake(`${s.url}${fluxPath}&tag=slow`, { ...auth, handshakeTimeoutMs: 60_000 });
    await waitFor('the dial to reach the upstream', () => s.emulator.handshakesInProgress === 1);
    await s.sidecar.shutdown();
    assert.equal(s.emulator.handshakesInProgress, 1, 'the shutdown finished while the upstream still held the dial');
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
    const metrics = await (await fetch(`${s.admin}/metrics`)).text();
    assert.match(metrics, /^sluice_sidecar_client_errors_total\{code="SLUICE_E_CREDENTIALS"\} 1$/m);
  });
});

/** A raw client: the handshake for a Flux stream, then whatever the test does with the socket. */
async function rawClient(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  socket.write(rawHandshake(fluxPath));
  after(() => socket.destroy());
  return socket;
}

/**
 * Resolves with what a writer has written once it is stuck: waiting for 'drain', and still
 * waiting with nothing more written after round trips through the sidecar's event loop (its
 * admin port answers on the same loop that reads the streams). A sidecar that kept reading
 * the writer's side would have made room within them, and the writer would have drained; one
 * that holds the reads back never does. Resolves too once the writer has written everything,
 * so that the test's bound then fails. Counting the sidecar's turns instead of waiting for a
 * quiet spell keeps a slow machine from passing for a stalled writer.
 */
async function stuck(writer: Socket, written: () => number, finished: () => boolean, admin: string): Promise<number> {
  for (;;) {
    await waitFor('the writer to wait for room', () => writer.writableNeedDrain || finished(), { timeoutMs: 15_000 });
    if (finished()) return written();
    const before = written();
    for (let i = 0; i < 5; i++) await (await fetch(`${admin}/healthz`)).text();
    if (writer.writableNeedDrain && written() === before) return before;
  }
}

describe('backpressure', () => {
  const mib = 1024 * 1024;
  const quiet = { reaping: { idleTimeoutSeconds: 60, pingIntervalSeconds: 60 } };

  test('a client that does not read stops the upstream, and gets every byte once it reads again', async () => {
    const frames = 48;
    const payload = Buffer.alloc(mib, 7);
    const header = Buffer.from([0x82, 127, 0, 0, 0, 0, 0, 0x10, 0, 0]); // binary, 1 MiB, unmasked
    let written = 0;
    let upstreamSocket: Socket | undefined;
    const upstream = await rawUpstream((socket, request) => {
      accept(socket, request);
      upstreamSocket = socket;
      const next = (sent: number) => {
        for (let i = sent; i < frames; i++) {
          written += header.length + payload.length;
          const room = socket.write(Buffer.concat([header, payload]));
          if (!room) {
            socket.once('drain', () => next(i + 1));
            return;
          }
        }
        socket.write(Buffer.from([0x88, 0x02, 0x03, 0xe8]));
      };
      next(0);
    });
    const s = await setup({ spec: { upstream, ...quiet } });
    const client = await rawClient(s.sidecar.proxyPort);
    // Counts what follows the handshake's answer, which may share its first chunk.
    let head = '';
    const body: Buffer[] = [];
    await new Promise<void>((resolve) => {
      client.on('data', (chunk: Buffer) => {
        if (head.endsWith('\r\n\r\n')) {
          body.push(chunk);
          return;
        }
        const text = chunk.toString('latin1');
        const end = (head + text).indexOf('\r\n\r\n');
        if (end < 0) {
          head += text;
          return;
        }
        body.push(chunk.subarray(end + 4 - head.length));
        head = (head + text).slice(0, end + 4);
        client.pause();
        resolve();
      });
    });
    const total = frames * (header.length + mib);
    const plateau = await stuck(
      upstreamSocket as Socket,
      () => written,
      () => written >= total,
      s.admin,
    );
    assert.ok(plateau < total / 2, `the upstream wrote ${plateau} bytes to a client that read none`);
    client.resume();
    await new Promise((resolve) => client.once('end', resolve));
    // Every byte of every data frame, then the upstream's close; the sidecar's pings may sit between.
    const bytes = Buffer.concat(body);
    const seen: number[] = [];
    let dataBytes = 0;
    for (let at = 0; at < bytes.length; ) {
      const opcode = (bytes[at] as number) & 0x0f;
      let length = (bytes[at + 1] as number) & 0x7f;
      let offset = 2;
      if (length === 126) [length, offset] = [bytes.readUInt16BE(at + 2), 4];
      else if (length === 127) [length, offset] = [Number(bytes.readBigUInt64BE(at + 2)), 10];
      if (opcode === 0x2) dataBytes += length;
      if (opcode !== 0x9) seen.push(opcode);
      at += offset + length;
    }
    assert.equal(dataBytes, frames * mib);
    assert.deepEqual(seen, [...Array(frames).fill(0x2), 0x8]);
    await waitFor('the slot to be freed', () => s.gate().open === 0);
    assert.equal(s.sidecar.admission.doubleReleases, 0);
  });

  test('an upstream that does not read stops the client, and gets every byte once it reads again', async () => {
    let upstreamSocket: Socket | undefined;
    let arrived = 0;
    const upstream = await rawUpstream((socket, request) => {
      accept(socket, request);
      upstreamSocket = socket;
      socket.pause();
      socket.on('data', (chunk: Buffer) => {
        arrived += chunk.length;
      });
    });
    const s = await setup({ spec: { upstream, ...quiet } });
    const client = await rawClient(s.sidecar.proxyPort);
    await new Promise<void>((resolve) => client.once('data', () => resolve()));
    // Masked binary frames of 64 KiB (a zero mask leaves the payload as it is).
    const frame = Buffer.concat([
      Buffer.from([0x82, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
      Buffer.alloc(65536),
    ]);
    const frames = 512;
    let written = 0;
    const next = (sent: number) => {
      for (let i = sent; i < frames; i++) {
        written += frame.length;
        if (!client.write(frame)) {
          client.once('drain', () => next(i + 1));
          return;
        }
      }
    };
    next(0);
    const plateau = await stuck(
      client,
      () => written,
      () => written >= frames * frame.length,
      s.admin,
    );
    assert.ok(
      plateau < (frames * frame.length) / 2,
      `the client got ${plateau} bytes out to an upstream that read none`,
    );

    (upstreamSocket as Socket).resume();
    await waitFor('every byte to reach the upstream', () => arrived >= frames * frame.length, { timeoutMs: 15_000 });
    assert.equal(arrived, frames * frame.length);
    client.destroy();
    await waitFor('the slot to be settled', () => s.gate().open === 0);
    assert.equal(s.sidecar.admission.doubleReleases, 0);
  });

  test('a stream held up by backpressure still ends at its maximum duration', async () => {
    const upstream = await rawUpstream((socket, request) => {
      accept(socket, request);
      socket.pause(); // never reads: the client is paused in turn
    });
    const s = await setup({
      spec: { upstream, reaping: { idleTimeoutSeconds: 60, pingIntervalSeconds: 1, maxStreamSeconds: 2 } },
    });
    const client = await rawClient(s.sidecar.proxyPort);
    await new Promise<void>((resolve) => client.once('data', () => resolve()));
    const frame = Buffer.concat([
      Buffer.from([0x82, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
      Buffer.alloc(65536),
    ]);
    const pump = () => {
      while (client.write(frame));
      client.once('drain', pump);
    };
    pump();
    client.on('error', () => {});
    const ended = new Promise<void>((resolve) => client.once('close', () => resolve()));
    await waitFor('the stream to end', () => s.gate().open === 0, { timeoutMs: 15_000 });
    client.destroy();
    await ended;
    assert.equal(s.sidecar.admission.doubleReleases, 0);
    const metrics = await (await fetch(`${s.admin}/metrics`)).text();
    assert.match(metrics, /^sluice_sidecar_streams_reaped_total\{reason="max-duration"\} 1$/m);
  });
});
