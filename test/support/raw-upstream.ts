/**
 * A provider stand-in at the byte level, for tests of how streams end: it accepts any
 * WebSocket handshake, answers CloseStream the way Flux does (its last messages, then a
 * close frame without a status code) and records, for every stream, whether its close
 * frame was answered before the connection ended. It reads frames itself, with no
 * WebSocket library in between, so that nothing answers a close on its behalf.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';

/** What the upstream saw of one stream. */
export interface RawStream {
  id: number;
  /** Text messages received, in order. */
  texts: string[];
  /** It sent its close frame. */
  closeSent: boolean;
  /** A close frame came back (after ours, or before it: then ours was the answer). */
  closeReceived: boolean;
  /** Close frames received in all: one, in a proper handshake. */
  closesReceived: number;
  /** The connection has ended. */
  ended: boolean;
}

export interface RawUpstreamOptions {
  /** Text messages sent after CloseStream, before the close frame. */
  lastMessages?: number;
}

export class RawUpstream {
  readonly streams: RawStream[] = [];
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #options: Required<RawUpstreamOptions>;

  private constructor(server: Server, options: RawUpstreamOptions) {
    this.#server = server;
    this.#options = { lastMessages: 2, ...options };
    server.on('connection', (socket) => this.#accept(socket));
  }

  static async start(options: RawUpstreamOptions = {}): Promise<RawUpstream> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new RawUpstream(server, options);
  }

  get url(): string {
    const address = this.#server.address();
    if (!address || typeof address === 'string') throw new Error('not listening');
    return `ws://127.0.0.1:${address.port}`;
  }

  /** Streams whose connection ended after our close frame went out with none coming back. */
  unanswered(): RawStream[] {
    return this.streams.filter((s) => s.ended && s.closeSent && !s.closeReceived);
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(socket: Socket): void {
    this.#sockets.add(socket);
    const stream: RawStream = {
      id: this.streams.length,
      texts: [],
      closeSent: false,
      closeReceived: false,
      closesReceived: 0,
      ended: false,
    };
    this.streams.push(stream);
    let buffer = Buffer.alloc(0);
    let upgraded = false;
    socket.on('error', () => undefined);
    socket.on('close', () => {
      stream.ended = true;
      this.#sockets.delete(socket);
    });
    socket.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (!upgraded) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buffer.subarray(0, end).toString('latin1');
        buffer = buffer.subarray(end + 4);
        const key = /^sec-websocket-key:\s*(.+)$/im.exec(head)?.[1]?.trim() ?? '';
        const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
        socket.write(
          `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\ndg-request-id: raw-${stream.id}\r\n\r\n`,
        );
        upgraded = true;
      }
      for (;;) {
        const frame = readFrame(buffer);
        if (!frame) return;
        buffer = buffer.subarray(frame.size);
        if (frame.opcode === 0x8) {
          stream.closeReceived = true;
          stream.closesReceived += 1;
          if (!stream.closeSent) {
            stream.closeSent = true;
            socket.write(serverFrame(0x8, frame.payload.subarray(0, 2)));
          }
          // Both close frames have gone by: the server ends the connection (RFC 6455, 7.1.1).
          socket.end();
        } else if (frame.opcode === 0x1) {
          const text = frame.payload.toString('utf8');
          stream.texts.push(text);
          if (text.includes('"CloseStream"') && !stream.closeSent) {
            for (let i = 0; i < this.#options.lastMessages; i++) {
              socket.write(serverFrame(0x1, Buffer.from(JSON.stringify({ type: 'TurnInfo', last: i }))));
            }
            stream.closeSent = true;
            socket.write(serverFrame(0x8, Buffer.alloc(0)));
          }
        }
      }
    });
  }
}

/** One whole frame from a client (masked), or undefined until it has all arrived. */
function readFrame(bytes: Buffer): { opcode: number; payload: Buffer; size: number } | undefined {
  if (bytes.length < 2) return undefined;
  const opcode = (bytes[0] as number) & 0x0f;
  const masked = ((bytes[1] as number) & 0x80) !== 0;
  let length = (bytes[1] as number) & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (bytes.length < 4) return undefined;
    length = bytes.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (bytes.length < 10) return undefined;
    length = Number(bytes.readBigUInt64BE(2));
    offset = 10;
  }
  const maskAt = offset;
  if (masked) offset += 4;
  if (bytes.length < offset + length) return undefined;
  const payload = Buffer.from(bytes.subarray(offset, offset + length));
  if (masked)
    for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] as number) ^ (bytes[maskAt + (i & 3)] as number);
  return { opcode, payload, size: offset + length };
}

/** A masked frame, as a client sends it. */
export function clientFrame(opcode: number, payload: Buffer, fin = true): Buffer {
  const length = payload.length;
  const header =
    length < 126
      ? Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | length])
      : Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | 126, length >> 8, length & 0xff]);
  const mask = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] = (body[i] as number) ^ (mask[i & 3] as number);
  return Buffer.concat([header, mask, body]);
}

/** An unmasked frame, as a server sends it. */
function serverFrame(opcode: number, payload: Buffer): Buffer {
  const header =
    payload.length < 126
      ? Buffer.from([0x80 | opcode, payload.length])
      : Buffer.from([0x80 | opcode, 126, payload.length >> 8, payload.length & 0xff]);
  return Buffer.concat([header, payload]);
}
