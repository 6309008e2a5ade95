/**
 * The close handshake with the upstream is the sidecar's to complete, whatever the
 * client does: a provider whose close goes unanswered sees an abnormal end and may keep
 * counting the stream. Checked against an upstream that reads frames itself and records
 * whether each of its close frames was answered, and against the sidecar's books: an end
 * is clean (its slot free at once) only when the handshake was completed.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { clientFrame, RawUpstream } from '../support/raw-upstream.js';
import { rawHandshake } from '../support/stream-client.js';
import { waitFor } from '../support/wait.js';
import { auth, fluxPath, setup } from './fixture.js';

const closeStream = clientFrame(0x1, Buffer.from('{"type":"CloseStream"}'));

/** A raw client through the sidecar, with everything it has received so far. */
async function rawClient(port: number): Promise<{ socket: Socket; received: () => Buffer }> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  let received = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    received = Buffer.concat([received, chunk]);
  });
  socket.write(rawHandshake(fluxPath, auth.headers));
  await waitFor('the handshake', () => received.includes('\r\n\r\n'));
  const head = received.subarray(0, received.indexOf('\r\n\r\n')).toString('latin1');
  assert.match(head, /^HTTP\/1\.1 101 /);
  return { socket, received: () => received.subarray(received.indexOf('\r\n\r\n') + 4) };
}

/** Whether the bytes from the sidecar hold a close frame (the server frames of this test are all short). */
function holdsClose(bytes: Buffer): boolean {
  for (let at = 0; at + 1 < bytes.length; ) {
    if (((bytes[at] as number) & 0x0f) === 0x8) return true;
    at += 2 + ((bytes[at + 1] as number) & 0x7f);
  }
  return false;
}

const upstreams: RawUpstream[] = [];
after(() => Promise.all(upstreams.map((u) => u.close())));

async function rawUpstream(): Promise<RawUpstream> {
  const upstream = await RawUpstream.start();
  upstreams.push(upstream);
  return upstream;
}

/** CloseStream, then half of an audio frame: the upstream's close finds the client mid-frame. */
async function closedMidFrame() {
  const upstream = await rawUpstream();
  const s = await setup({ spec: { upstream: upstream.url } });
  const client = await rawClient(s.sidecar.proxyPort);
  const audio = clientFrame(0x2, Buffer.alloc(1000, 7));
  client.socket.write(Buffer.concat([closeStream, audio.subarray(0, 20)]));
  await waitFor('the upstream close to reach the client', () => holdsClose(client.received()));
  return { upstream, s, client, audio };
}

describe('the close handshake with the upstream', () => {
  test('is completed by the sidecar when the client vanishes right after CloseStream', async () => {
    const upstream = await rawUpstream();
    const s = await setup({ spec: { upstream: upstream.url, maxConcurrentStreams: 30 } });
    const count = 25;
    await Promise.all(
      Array.from({ length: count }, async () => {
        const client = await rawClient(s.sidecar.proxyPort);
        client.socket.write(closeStream);
        // The provider's last messages and its close arrive: the client is gone before it answers.
        await waitFor('the upstream close to reach the client', () => holdsClose(client.received()));
        client.socket.destroy();
      }),
    );
    await waitFor('every stream to end upstream', () => upstream.streams.every((st) => st.ended));
    await waitFor('every slot to be released', () => s.gate().open === 0);
    assert.equal(upstream.streams.length, count);
    assert.deepEqual(
      upstream.unanswered().map((st) => st.id),
      [],
      'every close of the upstream was answered',
    );
    for (const st of upstream.streams) assert.equal(st.closesReceived, 1, `stream ${st.id} got one close frame`);
    assert.equal(s.gate().stale, 0, 'completed handshakes free their slots at once');
    assert.equal(s.sidecar.admission.doubleReleases, 0);
  });

  test('is answered once when the client answers too', async () => {
    const upstream = await rawUpstream();
    const s = await setup({ spec: { upstream: upstream.url } });
    const client = await rawClient(s.sidecar.proxyPort);
    client.socket.write(closeStream);
    await waitFor('the upstream close to reach the client', () => holdsClose(client.received()));
    client.socket.write(clientFrame(0x8, Buffer.from([0x03, 0xe8])));
    await waitFor('the stream to end upstream', () => upstream.streams[0]?.ended);
    assert.equal(upstream.streams[0]?.closesReceived, 1, 'one close frame, not the client’s and the sidecar’s');
    await waitFor('the slot to be released', () => s.gate().open === 0);
    assert.equal(s.gate().stale, 0);
  });

  test('waits for the end of a frame the client is in the middle of, then answers', async () => {
    const { upstream, s, client, audio } = await closedMidFrame();
    client.socket.write(audio.subarray(20));
    await waitFor('the stream to end upstream', () => upstream.streams[0]?.ended);
    assert.equal(upstream.streams[0]?.closeReceived, true, 'the close was answered after the frame');
    await waitFor('the slot to be released', () => s.gate().open === 0);
    assert.equal(s.gate().stale, 0);
    client.socket.destroy();
  });

  test('cannot be completed by a client that vanishes mid-frame: the end is unclean and the slot held', async () => {
    const { upstream, s, client } = await closedMidFrame();
    client.socket.destroy();
    await waitFor('the stream to end upstream', () => upstream.streams[0]?.ended);
    assert.equal(upstream.unanswered().length, 1, 'a close frame cannot follow half a frame');
    await waitFor('the slot to be released', () => s.gate().open === 0);
    assert.equal(s.gate().stale, 1, 'an unanswered close keeps the slot for the release delay');
  });
});
