/**
 * sluice-sidecar as a process: configuration errors exit 2, malformed input of every
 * kind gets a proper status or close code while the process stays up, and SIGTERM
 * drains (readiness false, 503 for newcomers) and exits 0.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Emulator } from '../emulator/server.js';
import { loggedLine, type Script, startScript } from '../support/script.js';
import { openStream, rawHandshake, refusedHandshake } from '../support/stream-client.js';
import { waitFor } from '../support/wait.js';
import { auth, fluxPath } from './fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-sidecar-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function keyFile(content: string): string {
  const file = join(dir, `key-${Math.random().toString(36).slice(2)}`);
  writeFileSync(file, content);
  return file;
}

function budgetFile(upstream: string): string {
  const file = join(dir, `budgets-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(
    file,
    `apiVersion: sluice.dev/v1alpha1
kind: StreamBudget
metadata: {name: flux, namespace: voice}
spec:
  projectId: p
  upstream: ${upstream}
  podSelector: {matchLabels: {app: voicebot}}
  match: {paths: ["/v2/listen"]}
  maxConcurrentStreams: 5
`,
  );
  return file;
}

/** Starts the sidecar process and reads its ports from its first log line. The caller stops it. */
async function startProcess(env: Record<string, string>): Promise<{ script: Script; proxy: number; admin: number }> {
  const script = startScript('sidecar/main.ts', [], {
    ...process.env,
    SLUICE_LISTEN: '127.0.0.1:0',
    SLUICE_ADMIN_LISTEN: '127.0.0.1:0',
    ...env,
  });
  const line = await loggedLine<{ proxy: string; admin: string }>(script, 'Started sidecar', 20_000);
  return { script, proxy: Number(line.proxy.split(':')[1]), admin: Number(line.admin.split(':')[1]) };
}

/**
 * Sends raw bytes (and with `end`, closes the sending side after them) and collects
 * everything until the server closes the connection. A server that keeps it open fails the
 * case after 20 s: no case passes for lack of an answer.
 */
function raw(port: number, bytes: string | Buffer, options: { end?: boolean } = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks));
    };
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new Error(`the server kept the connection open: ${Buffer.concat(chunks).toString('latin1').slice(0, 200)}`),
      );
    }, 20_000);
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('close', done);
    socket.on('error', done);
    if (options.end) socket.end(bytes);
    else socket.write(bytes);
  });
}

const handshake = (path = fluxPath) => rawHandshake(path, auth.headers);

/** The close code in the first close frame after a 101 answer. */
function closeCode(response: Buffer): number | undefined {
  const end = response.indexOf('\r\n\r\n');
  let offset = end + 4;
  while (offset + 2 <= response.length) {
    const opcode = (response[offset] as number) & 0x0f;
    let length = (response[offset + 1] as number) & 0x7f;
    let header = 2;
    if (length === 126) {
      length = response.readUInt16BE(offset + 2);
      header = 4;
    }
    if (opcode === 0x8) return length >= 2 ? response.readUInt16BE(offset + header) : 1005;
    offset += header + length;
  }
  return undefined;
}

const status = (response: Buffer) => Number(/^HTTP\/1\.1 (\d{3})/.exec(response.toString('latin1'))?.[1] ?? 0);

describe('configuration', () => {
  test('refuses to start with exit code 2 on anything wrong, naming the variable', async () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{}, /SLUICE_BUDGET_FILE: is required/],
      [{ SLUICE_BUDGET_FILE: join(dir, 'missing.yaml') }, /SLUICE_BUDGET_FILE: cannot read/],
      [{ SLUICE_BUDGET_FILE: budgetFile('https://x') }, /spec\.upstream/],
      [{ SLUICE_BUDGET_FILE: budgetFile('ws://x'), SLUICE_LISTEN: 'nowhere' }, /SLUICE_LISTEN: must be host:port/],
      [{ SLUICE_BUDGET_FILE: budgetFile('ws://x'), SLUICE_LOG_LEVEL: 'loud' }, /SLUICE_LOG_LEVEL: must be one of/],
      [{ SLUICE_BUDGET_FILE: budgetFile('ws://x'), SLUICE_MAX_PAYLOAD_BYTES: '-1' }, /SLUICE_MAX_PAYLOAD_BYTES/],
      [
        { SLUICE_BUDGET_FILE: budgetFile('ws://x'), SLUICE_API_KEY_FILE: join(dir, 'no-such-key') },
        /SLUICE_API_KEY_FILE: The API key file .*no-such-key cannot be read/,
      ],
      [
        { SLUICE_BUDGET_FILE: budgetFile('ws://x'), SLUICE_API_KEY_FILE: keyFile('  \n') },
        /SLUICE_API_KEY_FILE: .* is empty/,
      ],
      [
        { SLUICE_BUDGET_FILE: budgetFile('ws://x'), SLUICE_API_KEY_FILE: keyFile('secret-one\nsecret-two') },
        /SLUICE_API_KEY_FILE: .* holds characters a header cannot carry/,
      ],
    ];
    for (const [env, message] of cases) {
      const script = startScript('sidecar/main.ts', [], { PATH: process.env.PATH, ...env });
      assert.equal(await script.exited, 2, script.output());
      assert.match(script.output(), message);
      assert.doesNotMatch(script.output(), /secret-one/, 'the key itself is never shown');
    }
  });
});

describe('the running process', () => {
  let emulator: Emulator;
  let sidecar: { script: Script; proxy: number; admin: number };

  // Hooks registered inside before() would run right after it: these belong to the suite.
  after(async () => {
    await sidecar?.script.stop();
    await emulator?.close();
  });

  before(async () => {
    emulator = await Emulator.start({ projects: [{ id: 'p', keys: ['emulator-key'], maxConcurrentStreams: 100 }] });
    sidecar = await startProcess({
      SLUICE_BUDGET_FILE: budgetFile(emulator.url),
      SLUICE_CLIENT_HANDSHAKE_TIMEOUT_MS: '500',
      SLUICE_SHUTDOWN_GRACE_SECONDS: '30',
    });
  });

  test('answers at least 20 kinds of malformed input properly and stays up', async () => {
    const proxy = sidecar.proxy;
    const admin = sidecar.admin;
    const big = 'x'.repeat(100_000);
    const cases: [string, number, string | Buffer, (r: Buffer) => boolean, { end?: boolean }?][] = [
      ['plain GET', proxy, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', (r) => status(r) === 426],
      [
        'plain POST to a stream path',
        proxy,
        'POST /v2/listen HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n',
        (r) => status(r) === 426,
      ],
      ['upgrade with POST', proxy, handshake().replace('GET', 'POST'), (r) => status(r) === 400],
      [
        'upgrade to another protocol',
        proxy,
        handshake().replace('Upgrade: websocket', 'Upgrade: h2c'),
        (r) => status(r) === 400,
      ],
      ['no key', proxy, handshake().replace(/Sec-WebSocket-Key: .*\r\n/, ''), (r) => status(r) === 400],
      ['a short key', proxy, handshake().replace('dGhlIHNhbXBsZSBub25jZQ==', 'c2hvcnQ='), (r) => status(r) === 400],
      ['version 8', proxy, handshake().replace('Version: 13', 'Version: 8'), (r) => status(r) === 400],
      [
        'Upgrade without Connection: Upgrade',
        proxy,
        handshake().replace('Connection: Upgrade', 'Connection: keep-alive'),
        (r) => status(r) === 426,
      ],
      ['not HTTP at all', proxy, Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0xff, 0x00]), (r) => status(r) === 400],
      ['a handshake never finished', proxy, 'GET /v2/listen HTTP/1.1\r\nHost: x\r\n', (r) => status(r) === 408],
      ['headers too large', proxy, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${big}\r\n\r\n`, (r) => status(r) === 431],
      ['an unknown HTTP version', proxy, 'GET / HTTP/9.9\r\nHost: x\r\n\r\n', (r) => status(r) >= 400],
      ['a path no budget covers', proxy, handshake('/v1/speak?model=aura'), (r) => status(r) === 403],
      ['an absolute-form target', proxy, handshake('http://elsewhere/v2/listen'), (r) => status(r) === 400],
      ['a target that parses as a host', proxy, handshake('//elsewhere/v2/listen'), (r) => status(r) === 400],
      [
        'an unmasked frame',
        proxy,
        Buffer.concat([Buffer.from(handshake()), Buffer.from([0x82, 0x02, 1, 2])]),
        (r) => closeCode(r) === 1002,
      ],
      [
        'reserved bits',
        proxy,
        Buffer.concat([Buffer.from(handshake()), Buffer.from([0xc2, 0x80, 0, 0, 0, 0])]),
        (r) => closeCode(r) === 1002,
      ],
      [
        'an unknown opcode',
        proxy,
        Buffer.concat([Buffer.from(handshake()), Buffer.from([0x83, 0x80, 0, 0, 0, 0])]),
        (r) => closeCode(r) === 1002,
      ],
      [
        'a frame claiming 2^62 bytes',
        proxy,
        Buffer.concat([Buffer.from(handshake()), Buffer.from([0x82, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])]),
        (r) => closeCode(r) === 1009,
      ],
      [
        'a fragmented ping',
        proxy,
        Buffer.concat([Buffer.from(handshake()), Buffer.from([0x09, 0x80, 0, 0, 0, 0])]),
        (r) => closeCode(r) === 1002,
      ],
      [
        'a stray continuation',
        proxy,
        Buffer.concat([Buffer.from(handshake()), Buffer.from([0x80, 0x80, 0, 0, 0, 0])]),
        (r) => closeCode(r) === 1002,
      ],
      [
        'admin: an unknown path',
        admin,
        'GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
        (r) => status(r) === 404,
      ],
      [
        'admin: POST /metrics',
        admin,
        'POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
        (r) => status(r) === 404,
      ],
      ['admin: not HTTP', admin, 'hello\r\n\r\n', (r) => status(r) === 400],
      [
        'admin: a body shorter than announced, then the client hangs up',
        admin,
        'POST /streams HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab',
        (r) => status(r) === 0 || status(r) >= 400,
        { end: true },
      ],
    ];
    assert.ok(cases.length >= 20);
    for (const [what, port, bytes, expected, options] of cases) {
      const response = await raw(port, bytes, options);
      assert.ok(expected(response), `${what}: ${response.toString('latin1').slice(0, 200)}`);
    }
    // Still up, still serving.
    assert.equal((await fetch(`http://127.0.0.1:${admin}/healthz`)).status, 200);
    const stream = await openStream(`ws://127.0.0.1:${proxy}${fluxPath}`, auth);
    stream.ws.close();
    await stream.closed;
    assert.equal(sidecar.script.child.exitCode, null);
  });

  test('SIGTERM drains: readiness false, newcomers refused, open streams finish, exit 0', async () => {
    const base = `ws://127.0.0.1:${sidecar.proxy}`;
    const stream = await openStream(`${base}${fluxPath}`, auth);
    sidecar.script.child.kill('SIGTERM');
    await waitFor(
      'readiness to turn false',
      async () => (await fetch(`http://127.0.0.1:${sidecar.admin}/readyz`)).status === 503,
    );
    const refusal = await refusedHandshake(`${base}${fluxPath}`, auth);
    assert.equal(refusal.status, 503);
    assert.equal(JSON.parse(refusal.body).code, 'SLUICE_E_SHUTTING_DOWN');
    // The open stream is given its grace period; it ends on its own.
    stream.ws.send(JSON.stringify({ type: 'CloseStream' }));
    assert.equal((await stream.closed).code, 1000);
    assert.equal(await sidecar.script.exited, 0);
  });
});

describe('credentials in the process', () => {
  test('the API key never appears in its logs, at the most verbose level, whether the upstream takes it or not', async () => {
    const emulator = await Emulator.start({
      projects: [{ id: 'p', keys: ['secret-key-one'], maxConcurrentStreams: 100 }],
    });
    after(() => emulator.close());
    const file = keyFile('secret-key-one\n');
    const sidecar = await startProcess({
      SLUICE_BUDGET_FILE: budgetFile(emulator.url),
      SLUICE_API_KEY_FILE: file,
      SLUICE_LOG_LEVEL: 'trace',
    });
    after(() => sidecar.script.stop());
    const base = `ws://127.0.0.1:${sidecar.proxy}`;
    const stream = await openStream(`${base}${fluxPath}`);
    stream.ws.close();
    await stream.closed;
    writeFileSync(file, 'secret-key-two\n'); // rotated to a key the upstream refuses
    const refusal = await refusedHandshake(`${base}${fluxPath}`);
    assert.equal(refusal.status, 401);
    for (const path of ['/streams', '/metrics']) {
      const text = await (await fetch(`http://127.0.0.1:${sidecar.admin}${path}`)).text();
      assert.doesNotMatch(text, /secret-key/, path);
    }
    await sidecar.script.stop();
    const output = sidecar.script.output();
    assert.match(output, /Ended stream/, 'the log was written');
    assert.doesNotMatch(output, /secret-key/);
  });
});
