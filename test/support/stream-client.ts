/**
 * A plain WebSocket client for tests: open a stream and collect what comes back,
 * or attempt a handshake and capture the refusal (status, headers, body).
 */
import type { IncomingMessage } from 'node:http';
import WebSocket from 'ws';

export interface StreamOptions {
  headers?: Record<string, string>;
  protocols?: string[];
  handshakeTimeoutMs?: number;
  /** false: do not answer pings (a client whose pongs go missing). */
  autoPong?: boolean;
}

export interface OpenedStream {
  ws: WebSocket;
  /** The 101 response's headers. */
  headers: IncomingMessage['headers'];
  /** Every text message received, parsed. */
  messages: Record<string, unknown>[];
  /** Resolves when the socket closes, with the code and reason the client saw. */
  closed: Promise<{ code: number; reason: string }>;
  /** Resolves once `count` messages have arrived in all. */
  received(count: number): Promise<Record<string, unknown>[]>;
}

export interface Refusal {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A handshake answered with an HTTP status instead of 101. */
export class HandshakeRefused extends Error {
  constructor(readonly refusal: Refusal) {
    super(`handshake refused with ${refusal.status}`);
    this.name = 'HandshakeRefused';
  }
}

/** Opens a stream; rejects if the handshake fails (with HandshakeRefused when it was answered). */
export function openStream(url: string, options: StreamOptions = {}): Promise<OpenedStream> {
  const ws = new WebSocket(url, options.protocols ?? [], {
    headers: options.headers,
    perMessageDeflate: false,
    handshakeTimeout: options.handshakeTimeoutMs ?? 5000,
    autoPong: options.autoPong ?? true,
  });
  const messages: Record<string, unknown>[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    messages.push(JSON.parse(data.toString()));
    for (const waiter of waiters.filter((w) => messages.length >= w.count)) waiter.resolve();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
  return new Promise((resolve, reject) => {
    ws.once('upgrade', (res) => {
      ws.once('open', () =>
        resolve({
          ws,
          headers: res.headers,
          messages,
          closed,
          received: (count) =>
            messages.length >= count
              ? Promise.resolve(messages)
              : new Promise((done, fail) => {
                  waiters.push({ count, resolve: () => done(messages) });
                  void closed.then(() => fail(new Error(`closed after ${messages.length} of ${count} messages`)));
                }),
        }),
      );
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk) => {
        body += chunk;
      });
      res.on('end', () => {
        ws.terminate();
        reject(new HandshakeRefused({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
    });
    ws.once('error', reject);
  });
}

/** Attempts a handshake that is expected to be refused, and returns the refusal. */
export function refusedHandshake(url: string, options: StreamOptions = {}): Promise<Refusal> {
  const ws = new WebSocket(url, options.protocols ?? [], {
    headers: options.headers,
    perMessageDeflate: false,
    handshakeTimeout: options.handshakeTimeoutMs ?? 5000,
  });
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.terminate();
      reject(new Error('the handshake was accepted'));
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk) => {
        body += chunk;
      });
      res.on('end', () => {
        ws.terminate();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
    });
    ws.once('error', reject);
  });
}

/** Sends exactly `seconds` of silence as 16 kHz linear16, in 80 ms frames (2,560 bytes) and a last shorter one. */
export function sendAudio(ws: WebSocket, seconds: number, frameBytes = 2560): void {
  let remaining = Math.round(seconds * 32000);
  const frame = Buffer.alloc(frameBytes);
  while (remaining > 0) {
    const size = Math.min(frameBytes, remaining);
    ws.send(size === frameBytes ? frame : frame.subarray(0, size));
    remaining -= size;
  }
}

/**
 * A WebSocket handshake as a raw client sends it, for tests that need the bytes themselves:
 * a fixed key, `headers` after the required ones.
 */
export function rawHandshake(target: string, headers: Record<string, string> = {}): string {
  return [
    `GET ${target} HTTP/1.1`,
    'Host: x',
    'Connection: Upgrade',
    'Upgrade: websocket',
    'Sec-WebSocket-Version: 13',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    '',
    '',
  ].join('\r\n');
}
