/**
 * The emulator over real sockets, with plain ws clients: authentication, handshake
 * errors, the Flux and Nova protocols, the limits it enforces or observes, what it
 * records, and the faults it injects.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, describe, test } from 'node:test';
import { openStream, refusedHandshake, sendAudio } from '../support/stream-client.js';
import { waitFor } from '../support/wait.js';
import { EmulatorConfigError, readEmulatorConfig } from './config.js';
import { Emulator, type EmulatorOptions, type ProjectStats } from './server.js';

const flux = '/v2/listen?model=flux-general-en&encoding=linear16&sample_rate=16000';
const nova = '/v1/listen?model=nova-3&encoding=linear16&sample_rate=16000';
const auth = { headers: { authorization: 'Token key-a' } };

const emulators: Emulator[] = [];
after(() => Promise.all(emulators.map((e) => e.close())));

async function emulator(
  project: Record<string, unknown> = {},
  rest: Record<string, unknown> = {},
  options: EmulatorOptions = {},
): Promise<Emulator> {
  const started = await Emulator.start(
    {
      projects: [{ id: 'p', keys: ['key-a'], maxConcurrentStreams: 10, releaseDelaySeconds: 0.3, ...project }],
      flux: { turnSeconds: 1 },
      ...rest,
    },
    options,
  );
  emulators.push(started);
  return started;
}

function stats(e: Emulator): ProjectStats {
  return e.stats().projects.p as ProjectStats;
}

describe('authentication', () => {
  test('accepts a key as Token, as Bearer, or as the token subprotocol', async () => {
    const e = await emulator();
    for (const options of [
      { headers: { authorization: 'Token key-a' } },
      { headers: { authorization: 'bearer key-a' } },
      { protocols: ['token', 'key-a'] },
      { protocols: ['bearer', 'key-a'] },
    ]) {
      const stream = await openStream(`${e.url}${flux}`, options);
      if (options.protocols) assert.equal(stream.ws.protocol, options.protocols[0]);
      stream.ws.close();
      await stream.closed;
    }
    assert.equal(stats(e).accepted, 4);
  });

  test('refuses a missing or unknown key with 401 in Deepgram shape', async () => {
    const e = await emulator();
    for (const options of [{}, { headers: { authorization: 'Token nope' } }, { protocols: ['token', 'nope'] }]) {
      const refusal = await refusedHandshake(`${e.url}${flux}`, options);
      assert.equal(refusal.status, 401);
      const body = JSON.parse(refusal.body);
      assert.equal(body.err_code, 'INVALID_AUTH');
      assert.equal(body.request_id, refusal.headers['dg-request-id']);
      assert.equal(refusal.headers['dg-error'], body.err_msg);
    }
    assert.equal(e.stats().unattributed.rejected.unauthorized, 3);
  });
});

describe('handshakes', () => {
  test('carry dg-request-id when accepted, matching the Connected message', async () => {
    const e = await emulator();
    const stream = await openStream(`${e.url}${flux}`, auth);
    const [connected] = await stream.received(1);
    assert.match(String(stream.headers['dg-request-id']), /^[0-9a-f-]{36}$/);
    assert.deepEqual(connected, { type: 'Connected', request_id: stream.headers['dg-request-id'], sequence_id: 0 });
    stream.ws.close();
  });

  test('refuse what Deepgram refuses: no model on Flux, bad encoding or rate, unknown paths', async () => {
    const e = await emulator();
    const cases: [string, number, RegExp][] = [
      ['/v2/listen?encoding=linear16&sample_rate=16000', 400, /model/],
      ['/v2/listen?model=flux-general-en&encoding=mp3', 400, /unsupported encoding/],
      ['/v2/listen?model=flux-general-en&encoding=linear16&sample_rate=11025', 400, /sample_rate/],
      ['/v2/listen?model=flux-general-en&encoding=linear16', 400, /sample_rate is required/],
      ['/v3/listen?model=x', 404, /No streaming endpoint/],
    ];
    for (const [path, status, message] of cases) {
      const refusal = await refusedHandshake(`${e.url}${path}`, auth);
      assert.equal(refusal.status, status, path);
      assert.match(JSON.parse(refusal.body).err_msg, message);
      assert.ok(refusal.headers['dg-request-id']);
      assert.ok(refusal.headers['dg-error']);
    }
  });

  test('refuse malformed upgrades in Deepgram shape, without counting them', async () => {
    const e = await emulator({ maxConcurrentStreams: 1 });
    const upgrade = (headers: Record<string, string>) =>
      new Promise<{ status: number; body: string; requestId: unknown }>((resolve, reject) => {
        const req = request(`${e.httpUrl}${flux}`, {
          headers: {
            connection: 'Upgrade',
            upgrade: 'websocket',
            'sec-websocket-version': '13',
            'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
            authorization: 'Token key-a',
            ...headers,
          },
        });
        req.on('response', (res) => {
          let body = '';
          res.on('data', (chunk) => {
            body += chunk;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body, requestId: res.headers['dg-request-id'] }));
        });
        req.on('upgrade', () => reject(new Error('upgraded')));
        req.on('error', reject);
        req.end();
      });
    const malformed: Record<string, string>[] = [
      { upgrade: 'h2c' },
      { 'sec-websocket-version': '8' },
      { 'sec-websocket-key': 'short' },
      { 'sec-websocket-protocol': 'token, a/b=' },
    ];
    for (const headers of malformed) {
      const refusal = await upgrade(headers);
      assert.equal(refusal.status, 400, JSON.stringify(headers));
      assert.match(JSON.parse(refusal.body).err_msg, /Not a valid WebSocket handshake/);
      assert.ok(refusal.requestId);
    }
    assert.equal(stats(e).open, 0);
    assert.equal(e.stats().unattributed.rejected['bad-request'], 4);
    const stream = await openStream(`${e.url}${flux}`, auth);
    stream.ws.close();
  });

  test('answer plain HTTP on the stream paths with 426 and elsewhere with 404', async () => {
    const e = await emulator();
    assert.equal((await fetch(`${e.httpUrl}/v2/listen`)).status, 426);
    assert.equal((await fetch(`${e.httpUrl}/nothing`)).status, 404);
  });
});

describe('Flux', () => {
  test('sends a TurnInfo for every 0.25 s of audio, with turns that start and end', async () => {
    const e = await emulator();
    const stream = await openStream(`${e.url}${flux}`, auth);
    sendAudio(stream.ws, 1.25);
    const messages = await stream.received(6);
    const events = messages.slice(1).map((m) => m.event);
    assert.deepEqual(events, ['StartOfTurn', 'Update', 'Update', 'EndOfTurn', 'StartOfTurn']);
    assert.deepEqual(
      messages.map((m) => m.sequence_id),
      [0, 1, 2, 3, 4, 5],
    );
    const end = messages[4] as { turn_index: number; audio_window_end: number; transcript: string; words: unknown[] };
    assert.equal(end.turn_index, 0);
    assert.equal(end.audio_window_end, 1);
    assert.equal(end.words.length, 4);
    assert.equal(end.transcript.split(' ').length, 4);
    assert.equal((messages[5] as { turn_index: number }).turn_index, 1);
    stream.ws.close();
  });

  test('counts audio by encoding and sample rate', async () => {
    const e = await emulator();
    // 8 kHz mulaw carries 8,000 bytes a second: 2,000 bytes are a quarter second.
    const stream = await openStream(`${e.url}/v2/listen?model=flux-general-en&encoding=mulaw&sample_rate=8000`, auth);
    stream.ws.send(Buffer.alloc(1999));
    stream.ws.send(Buffer.alloc(1));
    const [, first] = await stream.received(2);
    assert.equal(first?.event, 'StartOfTurn');
    assert.equal(first?.audio_window_end, 0.25);
    stream.ws.close();
  });

  test('sends EagerEndOfTurn before EndOfTurn when eager_eot_threshold is set', async () => {
    const e = await emulator();
    const stream = await openStream(`${e.url}${flux}&eager_eot_threshold=0.5`, auth);
    sendAudio(stream.ws, 1);
    const messages = await stream.received(5);
    assert.deepEqual(
      messages.slice(1).map((m) => m.event),
      ['StartOfTurn', 'Update', 'EagerEndOfTurn', 'EndOfTurn'],
    );
    stream.ws.close();
  });

  test('answers Configure with ConfigureSuccess or ConfigureFailure', async () => {
    const e = await emulator();
    const stream = await openStream(`${e.url}${flux}`, auth);
    stream.ws.send(JSON.stringify({ type: 'Configure', thresholds: { eot_threshold: 0.8 }, keyterms: ['sluice'] }));
    stream.ws.send(JSON.stringify({ type: 'Configure', thresholds: { eot_threshold: 2 } }));
    const [, ok, failed] = await stream.received(3);
    assert.equal(ok?.type, 'ConfigureSuccess');
    assert.deepEqual(ok?.thresholds, { eot_threshold: 0.8, eot_timeout_ms: 5000 });
    assert.deepEqual(ok?.keyterms, ['sluice']);
    assert.equal(failed?.type, 'ConfigureFailure');
    stream.ws.close();
  });

  test('ends the turn on ForceEndTurn', async () => {
    const e = await emulator();
    const stream = await openStream(`${e.url}${flux}`, auth);
    sendAudio(stream.ws, 0.5);
    await stream.received(3);
    stream.ws.send(JSON.stringify({ type: 'ForceEndTurn' }));
    const messages = await stream.received(4);
    assert.equal(messages[3]?.event, 'EndOfTurn');
    assert.equal(messages[3]?.end_of_turn_confidence, 1);
    stream.ws.close();
  });

  test('answers CloseStream with the last updates and a close without status code, freeing the slot', async () => {
    const e = await emulator();
    const stream = await openStream(`${e.url}${flux}`, auth);
    sendAudio(stream.ws, 0.64);
    stream.ws.send(JSON.stringify({ type: 'CloseStream' }));
    const { code } = await stream.closed;
    assert.equal(code, 1005);
    const events = stream.messages.slice(1).map((m) => m.event);
    assert.deepEqual(events, ['StartOfTurn', 'Update', 'Update', 'EndOfTurn']);
    assert.equal(stream.messages.at(-1)?.audio_window_end, 0.64);
    await waitFor('the server to see the end', () => stats(e).open === 0);
    assert.equal(stats(e).uncleanEnds, 0);
    assert.equal(stats(e).inUse, 0);
  });

  test('ends an idle stream with an Error message and close 1011', async () => {
    const e = await emulator({}, { flux: { idleTimeoutSeconds: 0.3 } });
    const stream = await openStream(`${e.url}${flux}`, auth);
    const { code } = await stream.closed;
    assert.equal(code, 1011);
    const error = stream.messages.at(-1);
    assert.equal(error?.type, 'Error');
    assert.equal(error?.code, 'NET-0001');
  });

  test('reports unknown messages, KeepAlive included, without closing', async () => {
    const e = await emulator();
    const stream = await openStream(`${e.url}${flux}`, auth);
    stream.ws.send(JSON.stringify({ type: 'KeepAlive' }));
    stream.ws.send('not json');
    stream.ws.send('null');
    const [, unknown, invalid, nothing] = await stream.received(4);
    assert.equal(unknown?.code, 'UNKNOWN_MESSAGE_TYPE');
    assert.equal(invalid?.code, 'INVALID_JSON');
    assert.equal(nothing?.code, 'INVALID_JSON');
    assert.equal(stream.ws.readyState, stream.ws.OPEN);
    stream.ws.close();
  });
});

describe('Nova (v1)', () => {
  test('sends Results per second of audio and answers CloseStream with Metadata and close 1000', async () => {
    const e = await emulator();
    const stream = await openStream(`${e.url}${nova}`, auth);
    sendAudio(stream.ws, 2.4);
    stream.ws.send(JSON.stringify({ type: 'CloseStream' }));
    const { code } = await stream.closed;
    assert.equal(code, 1000);
    assert.deepEqual(
      stream.messages.map((m) => m.type),
      ['Results', 'Results', 'Results', 'Metadata'],
    );
    assert.deepEqual(
      stream.messages.slice(0, 3).map((m) => [m.start, m.duration]),
      [
        [0, 1],
        [1, 1],
        [2, 0.4],
      ],
    );
    assert.equal(stream.messages[3]?.request_id, stream.headers['dg-request-id']);
    assert.equal(stream.messages[3]?.duration, 2.4);
  });

  test('flushes on Finalize and stays open', async () => {
    const e = await emulator();
    const stream = await openStream(`${e.url}${nova}`, auth);
    sendAudio(stream.ws, 0.4);
    stream.ws.send(JSON.stringify({ type: 'Finalize' }));
    const [results] = await stream.received(1);
    assert.equal(results?.from_finalize, true);
    assert.equal(results?.duration, 0.4);
    stream.ws.close();
  });

  test('closes with 1011 NET-0001 after the idle timeout, which KeepAlive postpones', async () => {
    const e = await emulator({}, { nova: { idleTimeoutSeconds: 0.4 } });
    const kept = await openStream(`${e.url}${nova}`, auth);
    const idle = await openStream(`${e.url}${nova}`, auth);
    const keepAlive = setInterval(() => kept.ws.send(JSON.stringify({ type: 'KeepAlive' })), 100);
    const { code, reason } = await idle.closed;
    assert.equal(code, 1011);
    assert.match(reason, /^NET-0001/);
    assert.equal(kept.ws.readyState, kept.ws.OPEN, 'KeepAlive keeps the other stream open');
    clearInterval(keepAlive);
    assert.equal((await kept.closed).code, 1011);
  });

  test('closes the stream on an empty binary frame', async () => {
    const e = await emulator();
    const stream = await openStream(`${e.url}${nova}`, auth);
    sendAudio(stream.ws, 0.5);
    stream.ws.send(Buffer.alloc(0));
    const { code } = await stream.closed;
    assert.equal(code, 1000);
    assert.deepEqual(
      stream.messages.map((m) => m.type),
      ['Results', 'Metadata'],
    );
  });
});

describe('limits', () => {
  test('refuses streams over the concurrency limit with 429 in Deepgram shape', async () => {
    const e = await emulator({ maxConcurrentStreams: 2 });
    const open = [await openStream(`${e.url}${flux}`, auth), await openStream(`${e.url}${nova}`, auth)];
    const refusal = await refusedHandshake(`${e.url}${flux}`, auth);
    assert.equal(refusal.status, 429);
    const body = JSON.parse(refusal.body);
    assert.equal(body.err_code, 'TOO_MANY_REQUESTS');
    assert.equal(body.err_msg, 'Too many requests. Please try again later');
    assert.equal(refusal.headers['dg-error'], body.err_msg);
    assert.equal(body.request_id, refusal.headers['dg-request-id']);
    assert.deepEqual(stats(e).rejected, { concurrency: 1 });
    for (const s of open) s.ws.close();
  });

  test('keeps counting a vanished client for the release delay, a clean close not at all', async () => {
    // The emulator's clock stands still unless the test moves it.
    let now = 0;
    const e = await emulator({ maxConcurrentStreams: 1, releaseDelaySeconds: 2 }, {}, { now: () => now });
    const clean = await openStream(`${e.url}${flux}`, auth);
    clean.ws.close();
    await clean.closed;
    await waitFor('the clean end to free the slot', () => stats(e).inUse === 0);

    const vanished = await openStream(`${e.url}${flux}`, auth);
    vanished.ws.terminate();
    await waitFor('the server to see the end', () => stats(e).open === 0);
    assert.equal(stats(e).stale, 1);
    assert.equal(stats(e).inUse, 1);
    now += 1999;
    assert.equal((await refusedHandshake(`${e.url}${flux}`, auth)).status, 429, 'the stale slot still counts');
    now += 1;
    assert.equal(stats(e).inUse, 0, 'released once the delay has passed');
    const after = await openStream(`${e.url}${flux}`, auth);
    after.ws.close();
    assert.equal(stats(e).uncleanEnds, 1);
  });

  test('refuses starts over the new-session limit with 429, or with close 1008', async () => {
    for (const rejectWith of ['handshake', 'close'] as const) {
      const e = await emulator({ newSessions: { perMinute: 2, rejectWith } });
      const streams = [await openStream(`${e.url}${flux}`, auth), await openStream(`${e.url}${flux}`, auth)];
      if (rejectWith === 'handshake') {
        assert.equal((await refusedHandshake(`${e.url}${flux}`, auth)).status, 429);
      } else {
        const third = await openStream(`${e.url}${flux}`, auth);
        assert.deepEqual(await third.closed, { code: 1008, reason: 'Too many concurrent sessions' });
      }
      assert.deepEqual(stats(e).rejected, { 'session-rate': 1 });
      assert.equal(stats(e).sessionStartsLastMinute, 2);
      assert.equal(stats(e).open, 2, 'a start refused by close takes no slot');
      for (const s of streams) s.ws.close();
    }
  });

  test('observing mode admits everything and records the exact peak and every moment above the limit', async () => {
    let now = 0;
    const e = await emulator(
      { maxConcurrentStreams: 2, enforce: false, newSessions: { perMinute: 3 } },
      {},
      { now: () => now },
    );
    const streams = [];
    for (let i = 0; i < 4; i++) streams.push(await openStream(`${e.url}${flux}`, auth));
    // Above the limit from the third acceptance until the closes bring the count back to 2.
    now += 500;
    for (const s of streams) s.ws.close();
    await Promise.all(streams.map((s) => s.closed));
    await waitFor('every end to be counted', () => stats(e).open === 0);
    const observed = stats(e);
    assert.equal(observed.peak, 4);
    assert.equal(observed.overLimitMoments, 2);
    assert.equal(observed.overLimitMs, 500);
    assert.equal(observed.sessionRateExceeded, 1);
    assert.deepEqual(observed.rejected, {});
    assert.equal(observed.inUse, 0);
  });
});

describe('records', () => {
  test('serve /stats, /metrics and a /reset that keeps what is open', async () => {
    const e = await emulator({ maxConcurrentStreams: 1 });
    const open = await openStream(`${e.url}${flux}`, auth);
    await refusedHandshake(`${e.url}${flux}`, auth);
    const served = (await (await fetch(`${e.httpUrl}/stats`)).json()) as { projects: Record<string, ProjectStats> };
    assert.equal(served.projects.p?.peak, 1);
    assert.equal(served.projects.p?.rejected.concurrency, 1);

    const metrics = await (await fetch(`${e.httpUrl}/metrics`)).text();
    assert.match(metrics, /^sluice_emulator_streams_in_use\{project="p"\} 1$/m);
    assert.match(metrics, /^sluice_emulator_streams_peak\{project="p"\} 1$/m);
    assert.match(
      metrics,
      /^sluice_emulator_handshakes_total\{project="p",outcome="rejected",reason="concurrency"\} 1$/m,
    );
    assert.match(metrics, /^sluice_emulator_stream_limit\{project="p"\} 1$/m);

    const streams = (await (await fetch(`${e.httpUrl}/streams`)).json()) as { requestId: string }[];
    assert.deepEqual(
      streams.map((s) => s.requestId),
      [open.headers['dg-request-id']],
    );

    const reset = (await (await fetch(`${e.httpUrl}/reset`, { method: 'POST' })).json()) as {
      projects: Record<string, ProjectStats>;
    };
    assert.equal(reset.projects.p?.inUse, 1, 'the open stream still counts');
    assert.equal(reset.projects.p?.peak, 1);
    assert.deepEqual(reset.projects.p?.rejected, {});
    assert.equal(reset.projects.p?.accepted, 0);
    open.ws.close();
  });

  test('keep a ledger: each acceptance with its request id and tags, each end with how long its slot counts', async () => {
    const e = await emulator({ releaseDelaySeconds: 10 });
    const clean = await openStream(`${e.url}${flux}&tag=pod-a&tag=clean`, auth);
    const vanished = await openStream(`${e.url}${flux}`, auth);
    clean.ws.close();
    await clean.closed;
    await waitFor('the clean end to be counted', () => stats(e).open === 1);
    vanished.ws.terminate();
    await waitFor('the unclean end to be counted', () => stats(e).open === 0);
    // Times are the emulator's own; what a slot counts for is exact.
    const book = e
      .ledger('p')
      .map((entry) =>
        entry.kind === 'accepted'
          ? { kind: entry.kind, requestId: entry.requestId, tags: entry.tags, inUse: entry.inUse }
          : { kind: entry.kind, clean: entry.clean, countedForMs: entry.countedUntil - entry.at, inUse: entry.inUse },
      );
    assert.deepEqual(book, [
      { kind: 'accepted', requestId: clean.headers['dg-request-id'], tags: ['pod-a', 'clean'], inUse: 1 },
      { kind: 'accepted', requestId: vanished.headers['dg-request-id'], tags: [], inUse: 2 },
      { kind: 'ended', clean: true, countedForMs: 0, inUse: 1 },
      { kind: 'ended', clean: false, countedForMs: 10_000, inUse: 1 },
    ]);
    assert.throws(() => e.ledger('nope'), /no project nope/);
  });
});

describe('faults', () => {
  test('delay the handshake', async () => {
    const e = await emulator({}, { faults: [{ action: { type: 'latency', ms: 2000 } }] });
    await assert.rejects(openStream(`${e.url}${flux}`, { ...auth, handshakeTimeoutMs: 200 }), /timed out/i);
    assert.equal(e.handshakesInProgress, 1, 'the emulator still holds the handshake the client gave up on');
    await waitFor('the delay to run out', () => e.handshakesInProgress === 0);
    assert.equal(stats(e).accepted, 0, 'a client that left during the delay is not counted');
  });

  test('refuse connections and answer with 5xx', async () => {
    const e = await emulator({}, { faults: [{ match: { tag: 'refuse' }, action: { type: 'refuse' } }] });
    await assert.rejects(openStream(`${e.url}${flux}&tag=refuse`, auth), /socket hang up|ECONNRESET/);
    e.addFault({ id: 'down', match: { tag: 'down' }, action: { type: 'status', status: 503 } });
    const refusal = await refusedHandshake(`${e.url}${flux}&tag=down`, auth);
    assert.equal(refusal.status, 503);
    assert.ok(refusal.headers['dg-error']);
    assert.deepEqual(stats(e).rejected, { 'fault-refused': 1, 'fault-status': 1 });
  });

  test('reset a stream mid-way, leaving a stale slot', async () => {
    const e = await emulator(
      { releaseDelaySeconds: 30 },
      { faults: [{ match: { tag: 'victim' }, action: { type: 'reset', afterMs: 50 } }] },
    );
    const bystander = await openStream(`${e.url}${flux}`, auth);
    const victim = await openStream(`${e.url}${flux}&tag=victim`, auth);
    assert.equal((await victim.closed).code, 1006);
    await waitFor('the server to count the end', () => stats(e).open === 1);
    assert.equal(stats(e).stale, 1);
    assert.equal(bystander.ws.readyState, bystander.ws.OPEN);
    bystander.ws.close();
  });

  test('go silent while audio still flows', async () => {
    const e = await emulator();
    const stream = await openStream(`${e.url}${flux}`, auth);
    await stream.received(1);
    const response = await fetch(`${e.httpUrl}/faults`, {
      method: 'POST',
      body: JSON.stringify({ match: { requestId: stream.headers['dg-request-id'] }, action: { type: 'silence' } }),
    });
    assert.equal(response.status, 201);
    sendAudio(stream.ws, 1);
    await waitFor('the audio to arrive', () => e.streams()[0]?.audioBytes === 32000);
    assert.equal(e.streams()[0]?.silent, true);
    assert.equal(stream.messages.length, 1, 'nothing after Connected');
    stream.ws.terminate();
  });

  test('close with 1011, hitting a seeded share of streams', async () => {
    const e = await emulator(
      { maxConcurrentStreams: 100 },
      {
        faults: [{ match: { share: 0.5 }, action: { type: 'close', afterMs: 0, code: 1011, reason: 'injected' } }],
        seed: 7,
      },
    );
    const streams = await Promise.all(Array.from({ length: 20 }, () => openStream(`${e.url}${flux}`, auth)));
    // A hit stream is closed as it opens, before it can answer anything; a spared one answers
    // audio with a TurnInfo. Whichever comes first tells them apart.
    const hit = [];
    for (const stream of streams) {
      sendAudio(stream.ws, 0.25);
      const outcome = await Promise.race([
        stream.closed,
        stream.received(2).then(
          () => 'answered' as const,
          () => 'closed first' as const,
        ),
      ]);
      if (outcome === 'answered') {
        assert.equal(stream.messages[1]?.type, 'TurnInfo');
        stream.ws.close();
      } else {
        assert.deepEqual(await stream.closed, { code: 1011, reason: 'injected' });
        hit.push(stream);
      }
    }
    assert.ok(hit.length > 0 && hit.length < 20, `${hit.length} of 20 hit`);
  });

  test('added at run time hit open streams by share and as many times as allowed', async () => {
    const e = await emulator({ maxConcurrentStreams: 100 });
    const streams = await Promise.all(Array.from({ length: 10 }, () => openStream(`${e.url}${flux}`, auth)));
    const response = await fetch(`${e.httpUrl}/faults`, {
      method: 'POST',
      body: JSON.stringify({ match: { share: 1 }, action: { type: 'close', code: 4000, reason: 'once' }, times: 2 }),
    });
    assert.equal(response.status, 201);
    await waitFor('two streams to be closed', () => stats(e).open === 8);
    assert.equal(e.faults.rules.length, 0, 'the rule was used up');
    for (const stream of streams) stream.ws.close();
  });

  test('never leave a handshake hanging: a client that leaves during latency is not counted, close() ends the rest', async () => {
    const e = await emulator({}, { faults: [{ action: { type: 'latency', ms: 60_000 } }] });
    await assert.rejects(openStream(`${e.url}${flux}`, { ...auth, handshakeTimeoutMs: 100 }), /timed out/i);
    const pending = openStream(`${e.url}${flux}`, auth);
    await waitFor('the handshake to arrive', () => e.stats().projects.p !== undefined);
    await e.close();
    await assert.rejects(pending);
    assert.equal(stats(e).accepted, 0);
    assert.equal(stats(e).open, 0);
  });

  test('count a stream the emulator closed for a protocol error as a clean end', async () => {
    const e = await emulator({}, { maxPayloadBytes: 1024 });
    const stream = await openStream(`${e.url}${flux}`, auth);
    stream.ws.send(Buffer.alloc(2000));
    assert.equal((await stream.closed).code, 1009);
    await waitFor('the server to see the end', () => stats(e).open === 0);
    assert.equal(stats(e).uncleanEnds, 0);
  });

  test('are refused with their problems when malformed', async () => {
    const e = await emulator();
    const response = await fetch(`${e.httpUrl}/faults`, {
      method: 'POST',
      body: JSON.stringify({ match: { share: 2 }, action: { type: 'close', code: 1006 } }),
    });
    assert.equal(response.status, 400);
    const { problems } = (await response.json()) as { problems: string[] };
    assert.deepEqual(problems, [
      'fault.match.share: must be between 0 and 1',
      'fault.action.code: must be a close code that can be sent (1000-4999, not 1004-1006 or 1015)',
    ]);
    assert.equal((await fetch(`${e.httpUrl}/faults`, { method: 'POST', body: '{' })).status, 400);
  });
});

describe('configuration', () => {
  test('reports every problem with its path', () => {
    assert.throws(
      () =>
        readEmulatorConfig({
          projects: [
            { id: 'a', keys: ['k'], maxConcurrentStreams: 0 },
            {
              id: 'a',
              keys: ['k'],
              maxConcurrentStreams: 5,
              newSessions: { perMinute: 10, autoscale: { maxPerMinute: 5 } },
            },
          ],
          flux: { idle: 3 },
        }),
      (error: unknown) =>
        error instanceof EmulatorConfigError &&
        error.code === 'SLUICE_E_EMULATOR_CONFIG' &&
        JSON.stringify(error.problems) ===
          JSON.stringify([
            'projects[0].maxConcurrentStreams: must be between 1 and 10000000, got 0',
            'projects[1].newSessions.autoscale.maxPerMinute: must be between 10 and 10000000, got 5',
            'flux.idle: unknown field',
            'projects: project id "a" appears twice',
            'projects: a key is shared by projects a and a',
          ]),
    );
  });
});
