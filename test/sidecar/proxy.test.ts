/**
 * The proxy over real sockets: admission and its queue, refusals shaped like the
 * provider's, what passes through untouched, credentials, and upstream refusals
 * relayed with their headers and bodies.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { WebSocketServer } from 'ws';
import { openStream, rawHandshake, refusedHandshake, sendAudio } from '../support/stream-client.js';
import { waitFor } from '../support/wait.js';
import { auth, fluxPath, novaPath, setup } from './fixture.js';

/** An upstream that accepts everything and remembers each handshake request. */
async function captureUpstream() {
  const seen: IncomingMessage[] = [];
  const server = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    handleProtocols: (protocols) => protocols.values().next().value ?? false,
  });
  server.on('connection', (_ws, req) => seen.push(req));
  await new Promise((resolve) => server.once('listening', resolve));
  after(() => new Promise((resolve) => server.close(resolve)));
  return { url: `ws://127.0.0.1:${(server.address() as { port: number }).port}`, seen };
}

describe('admission', () => {
  test('a waiting handshake is admitted when a slot frees', async () => {
    const s = await setup({ spec: { maxConcurrentStreams: 1, admission: { queueTimeoutMs: 5000 } } });
    const first = await openStream(`${s.url}${fluxPath}`, auth);
    const second = openStream(`${s.url}${fluxPath}`, auth);
    await waitFor('the second stream to queue', () => s.sidecar.admission.queued === 1);
    first.ws.close();
    const admitted = await second;
    assert.equal(admitted.ws.readyState, admitted.ws.OPEN);
    admitted.ws.close();
    const metrics = await (await fetch(`${s.admin}/metrics`)).text();
    assert.match(metrics, /^sluice_sidecar_queue_wait_seconds_count 1$/m);
  });

  test('a waiting handshake that runs out of time gets a 429 naming the reason', async () => {
    const s = await setup({ spec: { maxConcurrentStreams: 1, admission: { queueTimeoutMs: 200 } } });
    const first = await openStream(`${s.url}${fluxPath}`, auth);
    const refusal = await refusedHandshake(`${s.url}${fluxPath}`, auth);
    assert.equal(refusal.status, 429);
    assert.equal(refusal.headers['x-sluice-reason'], 'concurrency');
    assert.equal(refusal.headers['x-sluice-budget'], 'default/flux');
    assert.match(String(refusal.headers['retry-after']), /^\d+$/);
    const body = JSON.parse(refusal.body);
    assert.equal(body.err_code, 'TOO_MANY_REQUESTS');
    assert.equal(body.code, 'SLUICE_E_CONCURRENCY');
    assert.equal(body.request_id, refusal.headers['x-sluice-request-id']);
    assert.equal(s.upstream().accepted, 1, 'the refusal never reached the upstream');
    const metrics = await (await fetch(`${s.admin}/metrics`)).text();
    assert.match(metrics, /^sluice_sidecar_queue_wait_seconds_count 1$/m, 'the wait of a refused stream counts');
    assert.match(metrics, /^sluice_sidecar_queue_wait_seconds_bucket\{le="0.1"\} 0$/m, 'it waited the whole timeout');
    first.ws.close();
  });

  test('the queue is bounded: overflow is refused at once', async () => {
    const s = await setup({
      spec: { maxConcurrentStreams: 1, admission: { queueTimeoutMs: 5000, maxQueueLength: 1 } },
    });
    const first = await openStream(`${s.url}${fluxPath}`, auth);
    const queued = openStream(`${s.url}${fluxPath}`, auth);
    await waitFor('one stream to queue', () => s.sidecar.admission.queued === 1);
    const refusal = await refusedHandshake(`${s.url}${fluxPath}`, auth);
    assert.equal(refusal.status, 429);
    first.ws.close();
    (await queued).ws.close();
  });

  test('new sessions are paced: past the burst, a 429 for session-rate with the wait in Retry-After', async () => {
    // 20 in any 61 s: 2 in hand, then one every 61/20 s.
    const s = await setup({ spec: { maxConcurrentStreams: 10, newSessions: { perMinute: 20 } } });
    const streams = [await openStream(`${s.url}${fluxPath}`, auth), await openStream(`${s.url}${fluxPath}`, auth)];
    const refusal = await refusedHandshake(`${s.url}${fluxPath}`, auth);
    assert.equal(refusal.status, 429);
    assert.equal(refusal.headers['x-sluice-reason'], 'session-rate');
    assert.equal(JSON.parse(refusal.body).code, 'SLUICE_E_SESSION_RATE');
    assert.equal(refusal.headers['retry-after'], '4', 'one token every 61/20 s');
    for (const stream of streams) stream.ws.close();
  });

  test('a stream no budget covers is refused with 403, or passed through uncounted when configured', async () => {
    const strict = await setup({ spec: { match: { paths: ['/v2/listen'] } } });
    const refusal = await refusedHandshake(`${strict.url}${novaPath}`, auth);
    assert.equal(refusal.status, 403);
    assert.equal(JSON.parse(refusal.body).code, 'SLUICE_E_NO_BUDGET');

    const lenient = await setup({ spec: { match: { paths: ['/v2/listen'] } }, env: { SLUICE_UNMATCHED: 'pass' } });
    const stream = await openStream(`${lenient.url}${novaPath}`, auth);
    assert.equal(lenient.gate().open, 0, 'not charged to the Flux budget');
    assert.equal(lenient.upstream().open, 1);
    stream.ws.close();
  });
});

describe('pass-through', () => {
  test('path, query with repeated keys, headers and subprotocols reach the upstream unchanged', async () => {
    const upstream = await captureUpstream();
    const s = await setup({ spec: { upstream: upstream.url } });
    const path = '/v2/listen?model=flux-general-en&keyterm=sluice&keyterm=budget&tag=a%20b&tag=a+b&eot_threshold=0.8';
    const stream = await openStream(`${s.url}${path}`, {
      protocols: ['token', 'app-key'],
      headers: { 'x-deepgram-session-id': 'session-7', 'user-agent': 'test-client/1' },
    });
    assert.equal(stream.ws.protocol, 'token');
    const [req] = upstream.seen;
    assert.equal(req?.url, path);
    assert.equal(req?.headers['x-deepgram-session-id'], 'session-7');
    assert.equal(req?.headers['user-agent'], 'test-client/1');
    assert.equal(req?.headers['sec-websocket-protocol'], 'token,app-key', 'as the client sent it');
    assert.equal(req?.headers['sec-websocket-extensions'], undefined, 'no compression is negotiated');
    stream.ws.close();
  });

  test('the request target goes upstream byte for byte, even what a URL parser would rewrite', async () => {
    const upstream = await captureUpstream();
    const s = await setup({ spec: { upstream: upstream.url } });
    // A raw client: WebSocket libraries would percent-encode the apostrophe themselves.
    const target = "/v2/listen?model=flux-general-en&keyterm=don't&keyterm=sluice&redact=pci&redact=ssn";
    const socket = connect(s.sidecar.proxyPort, '127.0.0.1');
    after(() => socket.destroy());
    socket.write(rawHandshake(target, { Authorization: 'Token k' }));
    const answer = await new Promise<string>((resolve) => socket.once('data', (chunk) => resolve(chunk.toString())));
    assert.match(answer, /^HTTP\/1\.1 101 /);
    assert.equal(upstream.seen[0]?.url, target);
  });

  test('a configured key is injected as Authorization: Token, replacing the client’s, and rotations apply to new streams', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-key-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const keyFile = join(dir, 'api-key');
    writeFileSync(keyFile, 'old-key\n');
    const upstream = await captureUpstream();
    const s = await setup({ spec: { upstream: upstream.url }, env: { SLUICE_API_KEY_FILE: keyFile } });
    const first = await openStream(`${s.url}${fluxPath}`, { protocols: ['token', 'app-key'] });
    assert.equal(first.ws.protocol, 'token', 'the client still gets the subprotocol it asked for');
    assert.equal(upstream.seen[0]?.headers.authorization, 'Token old-key');
    assert.equal(upstream.seen[0]?.headers['sec-websocket-protocol'], undefined, 'the client key is not sent on');
    writeFileSync(keyFile, 'new-key\n');
    const second = await openStream(`${s.url}${fluxPath}`, { headers: { authorization: 'Token app-key' } });
    assert.equal(upstream.seen[1]?.headers.authorization, 'Token new-key');
    const everything = JSON.stringify(await (await fetch(`${s.admin}/streams`)).json());
    const metrics = await (await fetch(`${s.admin}/metrics`)).text();
    for (const secret of ['old-key', 'new-key', 'app-key']) {
      assert.ok(!everything.includes(secret), `${secret} is not in /streams`);
      assert.ok(!metrics.includes(secret), `${secret} is not in /metrics`);
    }
    first.ws.close();
    second.ws.close();
  });

  test('upstream refusals reach the client with their status, dg- headers and body, and are counted', async () => {
    const s = await setup({ spec: { maxConcurrentStreams: 10 }, project: { maxConcurrentStreams: 1 } });
    const unauthorized = await refusedHandshake(`${s.url}${fluxPath}`, { headers: { authorization: 'Token wrong' } });
    assert.equal(unauthorized.status, 401);
    assert.equal(JSON.parse(unauthorized.body).err_code, 'INVALID_AUTH');
    assert.ok(unauthorized.headers['dg-request-id']);
    assert.ok(unauthorized.headers['dg-error']);

    const open = await openStream(`${s.url}${fluxPath}`, auth);
    const limited = await refusedHandshake(`${s.url}${fluxPath}`, auth);
    assert.equal(limited.status, 429);
    const body = JSON.parse(limited.body);
    assert.equal(body.err_code, 'TOO_MANY_REQUESTS');
    assert.equal(body.request_id, limited.headers['dg-request-id'], 'the upstream’s own request id');
    assert.deepEqual(s.gate(), { open: 1, stale: 0, inUse: 1 }, 'refused handshakes free their slots');
    const metrics = await (await fetch(`${s.admin}/metrics`)).text();
    assert.match(metrics, /^sluice_sidecar_upstream_rejections_total\{status="401"\} 1$/m);
    assert.match(metrics, /^sluice_sidecar_upstream_rejections_total\{status="429"\} 1$/m);
    open.ws.close();
  });

  test('an unreachable upstream is a 502 that frees the slot', async () => {
    const s = await setup({ spec: { upstream: 'ws://127.0.0.1:9' } });
    const refusal = await refusedHandshake(`${s.url}${fluxPath}`, auth);
    assert.equal(refusal.status, 502);
    assert.equal(JSON.parse(refusal.body).code, 'SLUICE_E_UPSTREAM_UNREACHABLE');
    assert.deepEqual(s.gate(), { open: 0, stale: 0, inUse: 0 });
  });

  test('frames over the payload limit close the stream with 1009', async () => {
    const s = await setup({ env: { SLUICE_MAX_PAYLOAD_BYTES: '4096' } });
    const stream = await openStream(`${s.url}${fluxPath}`, auth);
    stream.ws.send(Buffer.alloc(8192));
    assert.equal((await stream.closed).code, 1009);
    await waitFor('the slot to be free', () => s.gate().open === 0);
  });
});

describe('metrics', () => {
  test('bytes relayed count while a stream is open, and never go back when it ends', async () => {
    const s = await setup();
    const stream = await openStream(`${s.url}${fluxPath}`, auth);
    const replies: unknown[] = [];
    stream.ws.on('message', (data) => replies.push(data));
    sendAudio(stream.ws, 1); // 32,000 bytes of audio in frames of 2,560, each with an 8-byte masked header
    const bytes = async (direction: string) => {
      const metrics = await (await fetch(`${s.admin}/metrics`)).text();
      return Number(
        new RegExp(`^sluice_sidecar_bytes_total\\{direction="${direction}"\\} (\\d+)$`, 'm').exec(metrics)?.[1],
      );
    };
    await waitFor(
      'the audio to be counted while the stream is open',
      async () => (await bytes('client_to_upstream')) >= 32_000 + 13 * 8,
    );
    await waitFor(
      'the answers to be counted',
      async () => replies.length > 0 && (await bytes('upstream_to_client')) > 0,
    );
    const open = { up: await bytes('client_to_upstream'), down: await bytes('upstream_to_client') };
    stream.ws.close();
    await stream.closed;
    await waitFor('the stream to end', () => s.gate().open === 0);
    assert.ok((await bytes('client_to_upstream')) >= open.up);
    assert.ok((await bytes('upstream_to_client')) >= open.down);
  });
});
