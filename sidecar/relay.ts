/**
 * One stream's relay between the application (client) and the provider (upstream),
 * after both handshakes. Data frames pass through byte for byte, with backpressure both
 * ways; control frames are read: close codes that cannot go on the wire become 1000
 * (an upstream close without status, Flux's normal end) or 1011 (the upstream vanished).
 * The relay also pings the client, and ends streams that go idle, miss a pong or run too
 * long by sending CloseStream upstream and a close to the client. The sidecar completes
 * the close handshake with the upstream itself, whatever the client does: it answers the
 * upstream's close at once. It reports its end once, when the upstream socket closes,
 * saying whether the close handshake with the upstream was completed both ways.
 */
import type { Socket } from 'node:net';
import { buildFrame, closeFrame, FrameSplitter, Opcode, parseClose } from './frames.js';

/** Why the sidecar ended a stream itself. */
export type ReapReason = 'idle' | 'missed-pong' | 'max-duration' | 'shutdown' | 'protocol-error';

/**
 * The close sent to the client for each reason. The JS SDK reconnects on any close but
 * 1000: streams that would only be reaped again (idle, too long) get 1000; a client
 * that may be back (missed pong) or should move to another pod (shutdown) may reconnect.
 */
export const reapCloses: Record<ReapReason, { code: number; reason: string }> = {
  idle: { code: 1000, reason: 'sluice: no audio or message from the client within the idle timeout' },
  'missed-pong': { code: 1001, reason: 'sluice: the client did not answer a ping' },
  'max-duration': { code: 1000, reason: 'sluice: the stream reached its maximum duration' },
  shutdown: { code: 1012, reason: 'sluice: the sidecar is shutting down; reconnect' },
  'protocol-error': { code: 1002, reason: 'sluice: protocol error' },
};

/** How a stream ended. */
export interface RelayEnd {
  /**
   * Close frames went both ways between the sidecar and the upstream: the upstream saw a
   * normal end, so its slot is free at once. Any other end is unclean.
   */
  clean: boolean;
  /** Who or what ended it. */
  cause: 'client-closed' | 'client-gone' | 'upstream-closed' | 'upstream-lost' | ReapReason;
  bytesFromClient: number;
  bytesFromUpstream: number;
}

export interface RelayTimings {
  idleTimeoutMs: number;
  pingIntervalMs: number;
  maxStreamMs: number;
  /** How long to wait for the upstream to close after CloseStream before cutting it. */
  closeTimeoutMs: number;
  maxPayload: number;
}

const pingMarker = Buffer.from('sluice-ping:');
const closeStream = Buffer.from('{"type":"CloseStream"}');

export class Relay {
  readonly startedAt: number;
  bytesFromClient = 0;
  bytesFromUpstream = 0;
  readonly #client: Socket;
  readonly #upstream: Socket;
  readonly #timings: RelayTimings;
  readonly #onEnd: (end: RelayEnd) => void;
  readonly #fromClient: FrameSplitter;
  readonly #fromUpstream: FrameSplitter;
  /** Frames of our own waiting for a frame boundary in each direction. */
  readonly #toUpstream: Buffer[] = [];
  readonly #toClient: Buffer[] = [];
  #lastClientFrameAt: number;
  #pingSentAt: number | undefined;
  #pongSinceLastPing = true;
  #pingCount = 0;
  /** The upstream sent its close frame. */
  #upstreamCloseReceived = false;
  /** CloseStream, or the client's close frame, went upstream: the stream is ending there. */
  #endingUpstream = false;
  /** A close frame (the client's, or our answer) is on its way upstream: nothing more goes after it. */
  #closeFrameSentUpstream = false;
  /** That close frame was handed to the upstream socket: our half of the handshake is done. */
  #closeFrameWrittenUpstream = false;
  /** Our answer to the upstream's close, while it waits for a frame boundary. */
  #closeAnswer: Buffer | undefined;
  #clientCloseSent = false;
  #clientGone = false;
  /** We stopped reading the client because the upstream could not keep up: its silence is ours. */
  #clientPausedByUs = false;
  #cause: RelayEnd['cause'] | undefined;
  #reaping: ReapReason | undefined;
  #cutTimer: NodeJS.Timeout | undefined;
  #ended = false;

  constructor(
    client: Socket,
    clientHead: Buffer,
    upstream: Socket,
    upstreamHead: Buffer,
    timings: RelayTimings,
    now: number,
    onEnd: (end: RelayEnd) => void,
  ) {
    this.#client = client;
    this.#upstream = upstream;
    this.#timings = timings;
    this.#onEnd = onEnd;
    this.startedAt = now;
    this.#lastClientFrameAt = now;
    this.#fromClient = new FrameSplitter({ expectMasked: true, maxPayload: timings.maxPayload });
    this.#fromUpstream = new FrameSplitter({ expectMasked: false, maxPayload: Number.MAX_SAFE_INTEGER });
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.on('data', (chunk: Buffer) => this.#clientData(chunk));
    upstream.on('data', (chunk: Buffer) => this.#upstreamData(chunk));
    client.on('error', () => client.destroy());
    upstream.on('error', () => upstream.destroy());
    // The proxy's sockets are half-open capable: a client's FIN arrives as 'end' and means it is gone.
    client.on('end', () => this.#clientClosed());
    client.on('close', () => this.#clientClosed());
    upstream.on('close', () => this.#upstreamSocketClosed());
    if (clientHead.length > 0) this.#clientData(clientHead);
    if (upstreamHead.length > 0) this.#upstreamData(upstreamHead);
    // A client that left during the handshake left before these listeners.
    if (client.readableEnded || client.destroyed) this.#clientClosed();
  }

  /** Checks the stream's timers; the proxy calls this for every stream a few times a second. */
  tick(now: number): void {
    if (this.#reaping || this.#ended || this.#clientGone || this.#endingUpstream || this.#upstreamCloseReceived) return;
    if (now - this.startedAt >= this.#timings.maxStreamMs) {
      this.reap('max-duration');
      return;
    }
    // A client we are not reading (backpressure) cannot be judged idle or deaf.
    if (this.#clientPausedByUs) return;
    if (now - this.#lastClientFrameAt >= this.#timings.idleTimeoutMs) {
      this.reap('idle');
    } else if (this.#pingSentAt === undefined || now - this.#pingSentAt >= this.#timings.pingIntervalMs) {
      if (!this.#pongSinceLastPing) {
        this.reap('missed-pong');
        return;
      }
      this.#pingSentAt = now;
      this.#pongSinceLastPing = false;
      this.#sendToClient(
        buildFrame(Opcode.ping, Buffer.concat([pingMarker, Buffer.from(String(this.#pingCount++))]), false),
      );
    }
  }

  /**
   * Ends the stream on the sidecar's own account: CloseStream upstream, whose last
   * messages still reach the client, then the reason's close to the client once the
   * upstream has closed (or been cut after the close timeout).
   */
  reap(reason: ReapReason): void {
    if (this.#reaping || this.#ended) return;
    this.#reaping = reason;
    this.#cause = reason;
    if (this.#upstreamCloseReceived) {
      // The upstream already said its last word: only the client is left to tell.
      const close = reapCloses[reason];
      this.#closeClient(close.code, close.reason);
    }
    this.#finishUpstream();
  }

  /** Asks the upstream to finish (CloseStream) unless it is finishing already, and cuts it if it does not close in time. */
  #finishUpstream(): void {
    if (this.#ended) return;
    if (!this.#upstreamCloseReceived && !this.#endingUpstream) {
      this.#endingUpstream = true;
      // CloseStream may only go between messages: a client that stopped mid-message leaves nothing well-formed to follow.
      if (this.#fromClient.atMessageBoundary) this.#sendToUpstream(buildFrame(Opcode.text, closeStream, true));
      else this.#upstream.destroy();
    }
    this.#armCut();
  }

  /** An upstream that has been asked to close (or has closed) gets so long to hang up. */
  #armCut(): void {
    this.#cutTimer ??= setTimeout(() => this.#upstream.destroy(), this.#timings.closeTimeoutMs);
  }

  /** Sends the client a close of our own, at a frame boundary; a client mid-frame from a vanished upstream is cut instead. */
  #closeClient(code: number, reason: string): void {
    if (this.#clientCloseSent) return;
    this.#clientCloseSent = true;
    this.#sendToClient(closeFrame(code, reason, false));
  }

  #clientData(chunk: Buffer): void {
    this.bytesFromClient += chunk.length;
    // After CloseStream, or after a close frame went upstream, nothing more goes upstream.
    if (this.#reaping || this.#clientGone || this.#closeFrameWrittenUpstream) return;
    let sawFrame = false;
    for (const piece of this.#fromClient.push(chunk)) {
      if (piece.kind === 'error') {
        // Everything before the bad frame went upstream whole, so CloseStream can follow it.
        this.#reaping = 'protocol-error';
        this.#cause = 'protocol-error';
        this.#closeClient(piece.error.closeCode, `sluice: ${piece.error.message}`.slice(0, 123));
        if (!this.#upstreamCloseReceived && !this.#endingUpstream) {
          this.#endingUpstream = true;
          if (this.#fromClient.atMessageBoundaryBeforeError)
            this.#sendToUpstream(buildFrame(Opcode.text, closeStream, true));
          else this.#upstream.destroy();
        }
        this.#armCut();
        return;
      }
      if (piece.kind === 'start') sawFrame = true;
      else if (piece.kind === 'data') this.#write(this.#upstream, this.#client, piece.bytes);
      else if (piece.header.opcode === Opcode.pong && piece.payload.subarray(0, pingMarker.length).equals(pingMarker)) {
        this.#pongSinceLastPing = true;
      } else if (piece.header.opcode === Opcode.close) {
        // The client's answer to a close we already answered upstream goes no further.
        if (this.#closeFrameSentUpstream) continue;
        this.#cause ??= 'client-closed';
        this.#endingUpstream = true;
        this.#closeFrameSentUpstream = true;
        this.#armCut();
        if (this.#write(this.#upstream, this.#client, piece.raw)) this.#closeFrameWrittenUpstream = true;
      } else {
        this.#write(this.#upstream, this.#client, piece.raw);
      }
    }
    if (sawFrame) this.#lastClientFrameAt = performance.now();
    if (this.#fromClient.atBoundary) this.#flush(this.#toUpstream, this.#upstream, this.#client);
  }

  #upstreamData(chunk: Buffer): void {
    this.bytesFromUpstream += chunk.length;
    for (const piece of this.#fromUpstream.push(chunk)) {
      if (piece.kind === 'error') {
        this.#upstream.destroy(); // An upstream that breaks the protocol has ended uncleanly.
        return;
      }
      if (piece.kind === 'start') continue;
      if (piece.kind === 'data') {
        if (!this.#clientCloseSent) this.#write(this.#client, this.#upstream, piece.bytes);
        continue;
      }
      if (piece.header.opcode !== Opcode.close) {
        if (!this.#clientCloseSent) this.#write(this.#client, this.#upstream, piece.raw);
        continue;
      }
      this.#upstreamCloseReceived = true;
      this.#cause ??= 'upstream-closed';
      this.#armCut();
      if (this.#reaping) {
        const close = reapCloses[this.#reaping];
        this.#closeClient(close.code, close.reason);
      } else if (!this.#clientCloseSent) {
        const { code, reason } = parseClose(piece.payload);
        this.#clientCloseSent = true;
        // Codes that may not travel on the wire: no status (Flux's normal end) is a normal end; the others, an error.
        if (code === undefined || code === 1005)
          this.#write(this.#client, this.#upstream, closeFrame(1000, reason, false));
        else if (code === 1006 || code === 1015 || code === 1004) {
          this.#write(this.#client, this.#upstream, closeFrame(1011, reason, false));
        } else this.#write(this.#client, this.#upstream, piece.raw);
      }
      // Answer the upstream's close now, not when (or if) the client does: a client that
      // vanishes after CloseStream must not leave the upstream with an unanswered close.
      if (!this.#closeFrameSentUpstream) {
        this.#closeFrameSentUpstream = true;
        this.#closeAnswer = closeFrame(1000, '', true);
        this.#sendToUpstream(this.#closeAnswer);
      }
    }
    if (this.#fromUpstream.atBoundary) this.#flush(this.#toClient, this.#client, this.#upstream);
  }

  /** Queues a frame of our own for the upstream; it goes out at the next frame boundary of the client's stream. */
  #sendToUpstream(frame: Buffer): void {
    this.#toUpstream.push(frame);
    if (this.#upstreamAtFrameBoundary()) this.#flush(this.#toUpstream, this.#upstream, this.#client);
  }

  /**
   * Whether what went upstream so far ends between frames. Every byte the splitter took
   * from the client went upstream, up to a protocol error (whose frame never did, so what
   * went before it is whole) or the moment forwarding stopped.
   */
  #upstreamAtFrameBoundary(): boolean {
    return this.#reaping === 'protocol-error' || this.#fromClient.atBoundary;
  }

  #sendToClient(frame: Buffer): void {
    this.#toClient.push(frame);
    if (this.#fromUpstream.atBoundary) this.#flush(this.#toClient, this.#client, this.#upstream);
  }

  #flush(queue: Buffer[], to: Socket, from: Socket): void {
    while (queue.length > 0) {
      const frame = queue.shift() as Buffer;
      if (this.#write(to, from, frame) && frame === this.#closeAnswer) this.#closeFrameWrittenUpstream = true;
    }
  }

  /** Writes with backpressure: a destination that cannot keep up pauses its source. False when it cannot take bytes any more. */
  #write(to: Socket, from: Socket, bytes: Buffer): boolean {
    if (to.destroyed || !to.writable) return false;
    if (!to.write(bytes) && !from.isPaused()) {
      from.pause();
      if (from === this.#client) this.#clientPausedByUs = true;
      to.once('drain', () => this.#resume(from));
    }
    return true;
  }

  #resume(from: Socket): void {
    from.resume();
    if (from === this.#client && this.#clientPausedByUs) {
      this.#clientPausedByUs = false;
      // Time spent unread does not count against the client.
      const now = performance.now();
      this.#lastClientFrameAt = now;
      this.#pingSentAt = now;
      this.#pongSinceLastPing = true;
    }
  }

  #clientClosed(): void {
    if (this.#ended || this.#clientGone) return;
    if (!this.#clientCloseSent && !this.#reaping && this.#cause === undefined) this.#cause = 'client-gone';
    this.#clientGone = true;
    // Its socket will never drain: read the upstream again, to see its close.
    this.#resume(this.#upstream);
    if (this.#toUpstream.length > 0) {
      // Frames of ours wait for a frame the client will never finish: the upstream cannot be
      // told anything whole any more, so the stream ends uncleanly.
      this.#upstream.destroy();
      return;
    }
    // A client that left without its close handshake leaves a stream the upstream still counts: finish it.
    if (!this.#upstreamCloseReceived) this.#finishUpstream();
  }

  #upstreamSocketClosed(): void {
    if (this.#ended) return;
    this.#ended = true;
    clearTimeout(this.#cutTimer);
    this.#resume(this.#client);
    if (this.#reaping) {
      const close = reapCloses[this.#reaping];
      this.#closeClient(close.code, close.reason);
    } else if (!this.#upstreamCloseReceived) {
      this.#cause ??= 'upstream-lost';
      this.#closeClient(1011, 'sluice: the upstream connection was lost');
    }
    // A close still waiting for a frame boundary never gets one: the upstream is gone mid-frame.
    if (this.#toClient.length > 0) this.#client.destroy();
    else this.#client.end();
    // A client that never answers our close must not hold its socket forever.
    setTimeout(() => this.#client.destroy(), this.#timings.closeTimeoutMs).unref();
    this.#onEnd({
      clean: this.#upstreamCloseReceived && this.#closeFrameWrittenUpstream,
      cause: this.#cause ?? 'upstream-closed',
      bytesFromClient: this.bytesFromClient,
      bytesFromUpstream: this.bytesFromUpstream,
    });
  }

  /** Cuts both sockets at once (the process is going away). */
  destroy(): void {
    this.#upstream.destroy();
    this.#client.destroy();
  }
}
