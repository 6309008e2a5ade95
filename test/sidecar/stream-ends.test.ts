/**
 * Every way a stream can end releases its slot exactly once, while other streams stay
 * open: checked against the sidecar's own books (open, stale, double releases) and
 * against the emulator's (what the upstream still counts).
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import WebSocket from 'ws';
import { startScript } from '../support/script.js';
import { type OpenedStream, openStream, rawHandshake, refusedHandshake, sendAudio } from '../support/stream-client.js';
import { waitFor } from '../support/wait.js';
import { auth, fluxPath, type Setup, setup } from './fixture.js';

/** Opens a bystander, runs `end`, then checks the bystander is untouched and the books balance. */
async function withBystander(s: Setup, end: () => Promise<void>, expect: { stale: number; upstreamUnclean: number }) {
  const bystander = await openStream(`${s.url}${fluxPath}`, auth);
  await end();
  await waitFor('the sidecar to release the slot', () => s.gate().open === 1);
  await waitFor('the upstream to see the end', () => s.upstream().open === 1);
  assert.equal(s.gate().stale, expect.stale, 'slots held after the end');
  assert.equal(s.upstream().uncleanEnds, expect.upstreamUnclean, 'unclean ends seen upstream');
  assert.equal(s.sidecar.admission.doubleReleases, 0, 'no slot released twice');
  assert.equal(bystander.ws.readyState, WebSocket.OPEN, 'the other stream is untouched');
  bystander.ws.close();
  await bystander.closed;
  await waitFor('every slot to be free', () => s.gate().open === 0);
  assert.equal(s.sidecar.admission.doubleReleases, 0);
}

/** The sidecar's metrics say at least one stream ended this way. */
async function endedBy(s: Setup, cause: string, clean: boolean): Promise<void> {
  const metrics = await (await fetch(`${s.admin}/metrics`)).text();
  const line = new RegExp(`^sluice_sidecar_streams_ended_total\\{cause="${cause}",clean="${clean}"\\} (\\d+)$`, 'm');
  assert.ok(Number(line.exec(metrics)?.[1] ?? 0) >= 1, `no stream ended with cause=${cause} clean=${clean}`);
}

/** A raw client that completes the handshake and then neither reads nor writes: half-open. */
async function halfOpen(s: Setup): Promise<Socket> {
  const socket = connect(s.sidecar.proxyPort, '127.0.0.1');
  socket.write(rawHandshake(fluxPath, auth.headers));
  await new Promise<void>((resolve) => socket.once('data', () => resolve()));
  socket.pause();
  return socket;
}

describe('a stream ends and its slot is released exactly once', () => {
  test('when the client closes', async () => {
    const s = await setup();
    await withBystander(
      s,
      async () => {
        const stream = await openStream(`${s.url}${fluxPath}`, auth);
        stream.ws.close(1000, 'bye');
        assert.equal((await stream.closed).code, 1000);
      },
      { stale: 0, upstreamUnclean: 0 },
    );
    await endedBy(s, 'client-closed', true);
  });

  test('when the client process is killed', async () => {
    const s = await setup();
    await withBystander(
      s,
      async () => {
        const client = startScript('test/sidecar/fixtures/stream-forever.ts', [`${s.url}${fluxPath}`]);
        try {
          await waitFor('the client to stream', () => client.output().includes('streaming'));
          await waitFor('the stream to reach the upstream', () => s.upstream().open === 2);
          client.child.kill('SIGKILL');
          await client.exited;
        } finally {
          await client.stop();
        }
      },
      { stale: 0, upstreamUnclean: 0 },
    );
    await endedBy(s, 'client-gone', true);
  });

  test('when a half-open client stops answering pings', async () => {
    const s = await setup({ spec: { reaping: { pingIntervalSeconds: 1, upstreamReleaseDelaySeconds: 30 } } });
    let socket: Socket | undefined;
    await withBystander(
      s,
      async () => {
        socket = await halfOpen(s);
      },
      { stale: 0, upstreamUnclean: 0 },
    );
    socket?.destroy();
    await endedBy(s, 'missed-pong', true);
  });

  test('when an active client does not answer pings', async () => {
    const s = await setup({ spec: { reaping: { pingIntervalSeconds: 1, upstreamReleaseDelaySeconds: 30 } } });
    let stream: OpenedStream | undefined;
    await withBystander(
      s,
      async () => {
        stream = await openStream(`${s.url}${fluxPath}`, { ...auth, autoPong: false });
        const audio = setInterval(() => sendAudio((stream as OpenedStream).ws, 0.08), 80);
        const closed = await stream.closed;
        clearInterval(audio);
        assert.equal(closed.code, 1001);
        assert.match(closed.reason, /did not answer a ping/);
      },
      { stale: 0, upstreamUnclean: 0 },
    );
    await endedBy(s, 'missed-pong', true);
  });

  test('when the upstream closes with a status', async () => {
    const s = await setup({ emulatorConfig: { flux: { idleTimeoutSeconds: 0.5 } } });
    // The bystander would time out too: keep it fed.
    const bystander = await openStream(`${s.url}${fluxPath}`, auth);
    const feed = setInterval(() => sendAudio(bystander.ws, 0.08), 80);
    const stream = await openStream(`${s.url}${fluxPath}`, auth);
    const closed = await stream.closed;
    assert.equal(closed.code, 1011);
    assert.match(closed.reason, /^NET-0001/);
    assert.equal(stream.messages.at(-1)?.type, 'Error', 'the upstream message before the close reaches the client');
    await waitFor('the slot to be free', () => s.gate().open === 1);
    assert.equal(s.gate().stale, 0);
    await waitFor('the upstream to see the end', () => s.upstream().open === 1);
    assert.equal(s.upstream().uncleanEnds, 0, 'the upstream closed it with a frame: nothing counted on');
    assert.equal(bystander.ws.readyState, WebSocket.OPEN);
    clearInterval(feed);
    bystander.ws.close();
    await waitFor('every slot to be free', () => s.gate().open === 0);
    assert.equal(s.sidecar.admission.doubleReleases, 0);
    await endedBy(s, 'upstream-closed', true);
  });

  test('when the upstream closes without a status: the client sees 1000', async () => {
    const s = await setup();
    await withBystander(
      s,
      async () => {
        const stream = await openStream(`${s.url}${fluxPath}`, auth);
        sendAudio(stream.ws, 0.5);
        stream.ws.send(JSON.stringify({ type: 'CloseStream' }));
        const closed = await stream.closed;
        assert.equal(closed.code, 1000, 'Flux closes with no status; an SDK must not take that for an error');
        assert.equal(stream.messages.at(-1)?.event, 'EndOfTurn');
      },
      { stale: 0, upstreamUnclean: 0 },
    );
    await endedBy(s, 'upstream-closed', true);
  });

  test('when the upstream resets: the slot stays held for the release delay', async () => {
    const s = await setup({
      emulatorConfig: { faults: [{ match: { tag: 'victim' }, action: { type: 'reset', afterMs: 100 } }] },
    });
    await withBystander(
      s,
      async () => {
        const stream = await openStream(`${s.url}${fluxPath}&tag=victim`, auth);
        const closed = await stream.closed;
        assert.equal(closed.code, 1011);
        assert.match(closed.reason, /upstream connection was lost/);
      },
      { stale: 1, upstreamUnclean: 1 },
    );
    await endedBy(s, 'upstream-lost', false);
  });

  test('when the upstream handshake times out: the slot stays held for the release delay', async () => {
    const s = await setup({
      env: { SLUICE_UPSTREAM_HANDSHAKE_TIMEOUT_MS: '300' },
      emulatorConfig: { faults: [{ match: { tag: 'slow' }, action: { type: 'latency', ms: 3000 } }] },
    });
    const bystander = await openStream(`${s.url}${fluxPath}`, auth);
    const refusal = await refusedHandshake(`${s.url}${fluxPath}&tag=slow`, auth);
    assert.equal(refusal.status, 504);
    assert.equal(JSON.parse(refusal.body).code, 'SLUICE_E_UPSTREAM_TIMEOUT');
    assert.deepEqual(s.gate(), { open: 1, stale: 1, inUse: 2 });
    // The dial was given up: once the emulator has settled the late handshake, it counts only the bystander.
    await waitFor('the emulator to settle the slow handshake', () => s.emulator.handshakesInProgress === 0);
    assert.equal(s.upstream().accepted, 1, 'the given-up dial never became a stream upstream');
    assert.equal(s.upstream().open, 1);
    assert.equal(bystander.ws.readyState, WebSocket.OPEN);
    bystander.ws.close();
    assert.equal(s.sidecar.admission.doubleReleases, 0);
  });

  test('when the client goes idle', async () => {
    const s = await setup({ spec: { reaping: { idleTimeoutSeconds: 1, pingIntervalSeconds: 1 } } });
    const bystander = await openStream(`${s.url}${fluxPath}`, auth);
    const feed = setInterval(() => sendAudio(bystander.ws, 0.08), 80);
    const stream = await openStream(`${s.url}${fluxPath}`, auth);
    const closed = await stream.closed;
    assert.equal(closed.code, 1000, 'an idle stream is not worth a reconnect');
    assert.match(closed.reason, /idle timeout/);
    await waitFor('the slot to be free', () => s.gate().open === 1);
    assert.equal(s.gate().stale, 0);
    await waitFor('the upstream to see the end', () => s.upstream().open === 1);
    assert.equal(s.upstream().uncleanEnds, 0, 'CloseStream ended it cleanly upstream');
    assert.equal(bystander.ws.readyState, WebSocket.OPEN);
    clearInterval(feed);
    bystander.ws.close();
    await endedBy(s, 'idle', true);
  });

  test('when the stream reaches its maximum duration', async () => {
    const s = await setup({ spec: { reaping: { maxStreamSeconds: 3, pingIntervalSeconds: 1 } } });
    const stream = await openStream(`${s.url}${fluxPath}`, auth);
    const feed = setInterval(() => sendAudio(stream.ws, 0.08), 80);
    // A bystander opened later reaches its own maximum later: it must be untouched when the first ends.
    // It opens once the sidecar, whose clock the maximum is kept on, has seen the first stream through
    // half of its life, so the bystander's end is a second and a half behind on that same clock.
    await waitFor('the first stream to be half-way', () => (s.sidecar.proxy.streams()[0]?.openSeconds ?? 0) >= 1.5);
    const bystander = await openStream(`${s.url}${fluxPath}`, auth);
    const feedBystander = setInterval(() => sendAudio(bystander.ws, 0.08), 80);
    const closed = await stream.closed;
    clearInterval(feed);
    assert.equal(closed.code, 1000);
    assert.match(closed.reason, /maximum duration/);
    await waitFor('the slot to be free', () => s.gate().open <= 1);
    assert.equal(s.gate().stale, 0);
    await waitFor('the upstream to see the end', () => s.upstream().open <= 1);
    assert.equal(s.upstream().uncleanEnds, 0, 'CloseStream ended it cleanly upstream');
    assert.equal(bystander.ws.readyState, WebSocket.OPEN, 'the later stream runs on');
    // ...until its own maximum.
    assert.match((await bystander.closed).reason, /maximum duration/);
    clearInterval(feedBystander);
    await waitFor('every slot to be free', () => s.gate().open === 0);
    assert.equal(s.sidecar.admission.doubleReleases, 0);
    await endedBy(s, 'max-duration', true);
  });

  test('when the sidecar shuts down: CloseStream upstream, 1012 to the client', async () => {
    const s = await setup();
    const streams = [await openStream(`${s.url}${fluxPath}`, auth), await openStream(`${s.url}${fluxPath}`, auth)];
    await s.sidecar.shutdown();
    for (const stream of streams) {
      const closed = await stream.closed;
      assert.equal(closed.code, 1012);
    }
    assert.deepEqual(s.gate(), { open: 0, stale: 0, inUse: 0 });
    await waitFor('the upstream to see both ends', () => s.upstream().open === 0);
    assert.equal(s.upstream().uncleanEnds, 0);
    assert.equal(s.sidecar.admission.doubleReleases, 0);
    assert.equal(s.sidecar.ready, false);
  });
});
