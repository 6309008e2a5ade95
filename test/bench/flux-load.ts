/**
 * A Flux-like load generator for benchmarks, run as its own process: opens N streams,
 * sends each an 80 ms frame of 16 kHz linear16 (2,560 bytes) every 80 ms in real time,
 * and measures how late each TurnInfo arrives after the frame that completed its 0.25 s
 * of audio. Prints `{"event":"measuring"}` when the measurement window opens (every
 * stream open and settled) and one JSON line with the figures when it closes.
 *
 * It speaks WebSocket on the raw socket: each audio frame is one prebuilt buffer (a
 * zero mask is valid and leaves the payload as is), so the generator stays cheap
 * enough not to be what limits the measurement.
 *
 * Usage: flux-load.ts --url ws://127.0.0.1:PORT/v2/listen?... --key KEY --streams N
 *                     [--ramp-seconds 3] [--seconds 8] [--update-seconds 0.25]
 */
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { percentile } from './stats.js';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    key: { type: 'string', default: 'bench-key' },
    streams: { type: 'string' },
    'ramp-seconds': { type: 'string', default: '3' },
    seconds: { type: 'string', default: '8' },
    /** The upstream's update interval in audio seconds: 0.25 for Flux, 0.08 for an answer to every frame. */
    'update-seconds': { type: 'string', default: '0.25' },
  },
});
const url = values.url as string;
const count = Number(values.streams);
const rampMs = Number(values['ramp-seconds']) * 1000;
const measureMs = Number(values.seconds) * 1000;

const frameBytes = 2560;
const frameMs = 80;
const updateSeconds = Number(values['update-seconds']);
const bytesPerUpdate = Math.round(32000 * updateSeconds); // 16 kHz linear16
/** FIN + binary, masked, 16-bit length, a zero mask, then the payload. */
const frame = Buffer.concat([
  Buffer.from([0x82, 0x80 | 126, frameBytes >> 8, frameBytes & 0xff, 0, 0, 0, 0]),
  Buffer.alloc(frameBytes),
]);
const slots = 16; // one tick every 5 ms sends the frames of one slot

interface Stream {
  socket: Socket | undefined;
  open: boolean;
  bytes: number;
  /** When the frame completing each update's audio was sent, by update index. */
  crossedAt: number[];
  pending: Buffer;
}

const streams: Stream[] = [];
const lags: number[] = [];
let measuring = false;
let failed = 0;
let updates = 0;
let framesSent = 0;
let framesBeforeWindow = 0;
const windowEnd = /"audio_window_end":([0-9.]+)/;
const sendingMs = { total: 0, ticks: 0, late: 0 };

/** Reads the server's (unmasked) frames and times each TurnInfo. */
function onData(stream: Stream, chunk: Buffer): void {
  let data = stream.pending.length > 0 ? Buffer.concat([stream.pending, chunk]) : chunk;
  for (;;) {
    if (data.length < 2) break;
    const opcode = (data[0] as number) & 0x0f;
    let length = (data[1] as number) & 0x7f;
    let offset = 2;
    if (length === 126) {
      if (data.length < 4) break;
      length = data.readUInt16BE(2);
      offset = 4;
    } else if (length === 127) {
      if (data.length < 10) break;
      length = Number(data.readBigUInt64BE(2));
      offset = 10;
    }
    if (data.length < offset + length) break;
    if (opcode === 0x8) stream.open = false;
    if (opcode === 0x1 && measuring) {
      const text = data.toString('latin1', offset, offset + length);
      const end = text.includes('"TurnInfo"') ? windowEnd.exec(text) : null;
      const sentAt = end ? stream.crossedAt[Math.round(Number(end[1]) / updateSeconds)] : undefined;
      if (sentAt !== undefined) {
        lags.push(performance.now() - sentAt);
        updates += 1;
      }
    }
    data = data.subarray(offset + length);
  }
  stream.pending = data.length > 0 ? Buffer.from(data) : Buffer.alloc(0);
}

function openOne(): void {
  const stream: Stream = { socket: undefined, open: false, bytes: 0, crossedAt: [], pending: Buffer.alloc(0) };
  streams.push(stream);
  const target = new URL(url);
  const req = request({
    host: target.hostname,
    port: target.port,
    path: `${target.pathname}${target.search}`,
    headers: {
      connection: 'Upgrade',
      upgrade: 'websocket',
      'sec-websocket-version': '13',
      'sec-websocket-key': randomBytes(16).toString('base64'),
      authorization: `Token ${values.key}`,
    },
  });
  req.on('upgrade', (_res, socket, head) => {
    socket.setNoDelay(true);
    stream.socket = socket;
    stream.open = true;
    socket.on('data', (chunk: Buffer) => onData(stream, chunk));
    socket.on('close', () => {
      stream.open = false;
    });
    socket.on('error', () => {
      failed += 1;
    });
    if (head.length > 0) onData(stream, head);
  });
  req.on('response', (res) => {
    failed += 1;
    res.resume();
  });
  req.on('error', () => {
    failed += 1;
  });
  req.end();
}

const start = performance.now();
let opened = 0;
let tick = 0;
const timer = setInterval(() => {
  const now = performance.now();
  // Ramp: open streams evenly over the ramp period.
  const due = Math.min(count, Math.ceil(((now - start) / rampMs) * count));
  while (opened < due) {
    openOne();
    opened += 1;
  }
  const slot = tick++ % slots;
  for (let i = slot; i < streams.length; i += slots) {
    const stream = streams[i] as Stream;
    if (!stream.open || !stream.socket) continue;
    const before = Math.floor(stream.bytes / bytesPerUpdate);
    stream.bytes += frameBytes;
    const after = Math.floor(stream.bytes / bytesPerUpdate);
    if (after > before) stream.crossedAt[after] = now;
    stream.socket.write(frame);
    framesSent += 1;
  }
  const spent = performance.now() - now;
  sendingMs.total += spent;
  sendingMs.ticks += 1;
  if (spent > frameMs / slots) sendingMs.late += 1;
}, frameMs / slots);

// The measurement window starts once every stream is open and settled; a line says so,
// for whoever measures the relay's cost over the same window.
setTimeout(() => {
  measuring = true;
  framesBeforeWindow = framesSent;
  console.log(JSON.stringify({ event: 'measuring' }));
}, rampMs + 2000);

setTimeout(
  () => {
    clearInterval(timer);
    measuring = false;
    const sorted = Float64Array.from(lags).sort();
    const result = {
      streams: count,
      open: streams.filter((s) => s.open).length,
      failed,
      updates,
      updatesPerSecond: Math.round(updates / (measureMs / 1000)),
      lagP50Ms: percentile(sorted, 50),
      lagP99Ms: percentile(sorted, 99),
      lagMaxMs: sorted.length ? (sorted[sorted.length - 1] as number) : Number.NaN,
      generatorBusyTicks: sendingMs.late,
      framesSent,
      framesInWindow: framesSent - framesBeforeWindow,
    };
    // The figures go out before the streams end, so that the window's measurements stop here.
    console.log(JSON.stringify(result));
    setTimeout(() => {
      for (const stream of streams) stream.socket?.destroy();
      process.exit(0);
    }, 250);
  },
  rampMs + 2000 + measureMs,
);
