/**
 * WebSocket frames at the byte level, for a relay that forwards what it does not need
 * to read. The splitter reads frame headers as bytes arrive and hands back data-frame
 * bytes to forward untouched, and control frames (close, ping, pong) whole and unmasked,
 * to be forwarded, dropped or rewritten. Builders make the few frames the relay writes
 * itself. RFC 6455.
 */
import { randomFillSync } from 'node:crypto';

export const Opcode = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

export interface FrameHeader {
  fin: boolean;
  opcode: number;
  masked: boolean;
  /** Payload length in bytes. */
  length: number;
}

/** What the splitter found in the bytes it was given, in order. */
export type Piece =
  /** Bytes of data frames (headers included) to forward as they are. */
  | { kind: 'data'; bytes: Buffer }
  /** A data frame starts: for activity and size checks. */
  | { kind: 'start'; header: FrameHeader }
  /** A complete control frame: its bytes as received, and its payload unmasked. */
  | { kind: 'control'; header: FrameHeader; raw: Buffer; payload: Buffer }
  /** A protocol violation at the start of the next frame; everything before it was whole. Always last. */
  | { kind: 'error'; error: FrameError };

/** A violation of the protocol, with the close code it calls for. */
export class FrameError extends Error {
  constructor(
    readonly closeCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'FrameError';
  }
}

export interface SplitterOptions {
  /** Frames from a client must be masked, frames from a server must not be. */
  expectMasked: boolean;
  /** Largest data frame payload accepted; larger is a 1009. */
  maxPayload: number;
}

const empty = Buffer.alloc(0);

/** Splits a byte stream into frame pieces, without copying data-frame payloads. */
export class FrameSplitter {
  readonly #options: SplitterOptions;
  /** Bytes of a header (or a control frame) not yet complete. */
  #pending: Buffer = empty;
  /** Payload bytes still to pass through for the data frame in progress. */
  #dataLeft = 0;
  #inMessage = false;
  #inMessageBeforeError = false;
  #broken = false;

  constructor(options: SplitterOptions) {
    this.#options = options;
  }

  /** True between frames: the place where the relay may put a control frame of its own. */
  get atBoundary(): boolean {
    return this.#dataLeft === 0 && this.#pending.length === 0;
  }

  /** True between messages (no fragmented message in progress): the place for a data frame of its own. */
  get atMessageBoundary(): boolean {
    return this.atBoundary && !this.#inMessage;
  }

  /**
   * After a violation: whether the frames before it ended between messages. The bad
   * frame's bytes were never passed on, so what went out is whole up to there.
   */
  get atMessageBoundaryBeforeError(): boolean {
    return this.#dataLeft === 0 && !this.#inMessageBeforeError;
  }

  /**
   * Splits `chunk`. A protocol violation ends the list with an error piece, and the
   * splitter yields nothing more after it.
   */
  push(chunk: Buffer): Piece[] {
    if (this.#broken) return [];
    const pieces: Piece[] = [];
    try {
      this.#split(chunk, pieces);
    } catch (error) {
      if (!(error instanceof FrameError)) throw error;
      this.#broken = true;
      this.#inMessageBeforeError = this.#inMessage;
      pieces.push({ kind: 'error', error });
    }
    return pieces;
  }

  /**
   * Walks the bytes by offset. Consecutive data-frame bytes, headers included, leave as
   * one piece per chunk, so that the relay writes them with one call; only bytes of an
   * incomplete header or control frame are copied, to wait for the rest.
   */
  #split(chunk: Buffer, pieces: Piece[]): void {
    const data = this.#pending.length > 0 ? Buffer.concat([this.#pending, chunk]) : chunk;
    this.#pending = empty;
    let offset = 0;
    let runStart = -1;
    const flushRun = (end: number) => {
      if (runStart >= 0 && end > runStart) pieces.push({ kind: 'data', bytes: data.subarray(runStart, end) });
      runStart = -1;
    };
    try {
      while (offset < data.length) {
        if (this.#dataLeft > 0) {
          const take = Math.min(this.#dataLeft, data.length - offset);
          if (runStart < 0) runStart = offset;
          this.#dataLeft -= take;
          offset += take;
          continue;
        }
        const parsed = this.#header(data, offset);
        if (!parsed) break;
        const { header, headerLength } = parsed;
        if (header.opcode >= 0x8) {
          const total = headerLength + header.length;
          if (data.length - offset < total) break;
          flushRun(offset);
          const payload = Buffer.from(data.subarray(offset + headerLength, offset + total));
          if (header.masked) unmask(payload, data.subarray(offset + headerLength - 4, offset + headerLength));
          pieces.push({ kind: 'control', header, raw: Buffer.from(data.subarray(offset, offset + total)), payload });
          offset += total;
          continue;
        }
        pieces.push({ kind: 'start', header });
        if (runStart < 0) runStart = offset;
        this.#dataLeft = header.length;
        offset += headerLength;
      }
    } finally {
      // Whole frames before a violation, or before an incomplete header, still go out.
      flushRun(offset);
    }
    if (offset < data.length) this.#pending = Buffer.from(data.subarray(offset));
  }

  #header(bytes: Buffer, at: number): { header: FrameHeader; headerLength: number } | undefined {
    const available = bytes.length - at;
    if (available < 2) return undefined;
    const first = bytes[at] as number;
    const second = bytes[at + 1] as number;
    const fin = (first & 0x80) !== 0;
    const opcode = first & 0x0f;
    const masked = (second & 0x80) !== 0;
    let length = second & 0x7f;
    let offset = 2;
    if ((first & 0x70) !== 0) throw new FrameError(1002, 'reserved bits set without a negotiated extension');
    if (![0x0, 0x1, 0x2, 0x8, 0x9, 0xa].includes(opcode)) throw new FrameError(1002, `unknown opcode ${opcode}`);
    if (masked !== this.#options.expectMasked) {
      throw new FrameError(
        1002,
        this.#options.expectMasked ? 'client frames must be masked' : 'server frames must not be masked',
      );
    }
    if (opcode >= 0x8 && (!fin || length > 125)) throw new FrameError(1002, 'control frames must be whole and short');
    if (length === 126) {
      if (available < 4) return undefined;
      length = bytes.readUInt16BE(at + 2);
      offset = 4;
    } else if (length === 127) {
      if (available < 10) return undefined;
      const big = bytes.readBigUInt64BE(at + 2);
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new FrameError(1009, 'frame too large');
      length = Number(big);
      offset = 10;
    }
    if (masked) offset += 4;
    if (available < offset) return undefined;
    if (opcode < 0x8) {
      if (length > this.#options.maxPayload)
        throw new FrameError(1009, `frame of ${length} bytes exceeds the limit of ${this.#options.maxPayload}`);
      if (opcode === Opcode.continuation && !this.#inMessage)
        throw new FrameError(1002, 'continuation without a message');
      if (opcode !== Opcode.continuation && this.#inMessage)
        throw new FrameError(1002, 'new message inside a fragmented one');
      this.#inMessage = !fin;
    }
    return { header: { fin, opcode, masked, length }, headerLength: offset };
  }
}

/** XORs `data` in place with a 4-byte mask. */
export function unmask(data: Buffer, mask: Buffer): void {
  for (let i = 0; i < data.length; i++) data[i] = (data[i] as number) ^ (mask[i & 3] as number);
}

/** Builds one unfragmented frame; masked (with a random key) when sent by a client. */
export function buildFrame(opcode: number, payload: Buffer, masked: boolean): Buffer {
  const length = payload.length;
  const extended = length > 65535 ? 8 : length > 125 ? 2 : 0;
  const header = Buffer.alloc(2 + extended + (masked ? 4 : 0));
  header[0] = 0x80 | opcode;
  header[1] = (masked ? 0x80 : 0) | (extended === 8 ? 127 : extended === 2 ? 126 : length);
  if (extended === 2) header.writeUInt16BE(length, 2);
  if (extended === 8) header.writeBigUInt64BE(BigInt(length), 2);
  if (!masked) return Buffer.concat([header, payload]);
  const mask = header.subarray(2 + extended);
  randomFillSync(mask);
  const body = Buffer.from(payload);
  unmask(body, mask);
  return Buffer.concat([header, body]);
}

/** A close frame with a code and a reason (at most 123 bytes), or none for an empty close. */
export function closeFrame(code: number | undefined, reason: string, masked: boolean): Buffer {
  if (code === undefined) return buildFrame(Opcode.close, Buffer.alloc(0), masked);
  const text = Buffer.from(reason).subarray(0, 123);
  const payload = Buffer.alloc(2 + text.length);
  payload.writeUInt16BE(code, 0);
  text.copy(payload, 2);
  return buildFrame(Opcode.close, payload, masked);
}

/** The code and reason of a close frame's payload; code undefined when it carries none (1005). */
export function parseClose(payload: Buffer): { code: number | undefined; reason: string } {
  if (payload.length < 2) return { code: undefined, reason: '' };
  return { code: payload.readUInt16BE(0), reason: payload.subarray(2).toString('utf8') };
}
