/**
 * What one stream says back, per protocol. Flux (/v2/listen): Connected, a TurnInfo
 * about every 0.25 s of audio with synthetic turns, Configure, ForceEndTurn, and a
 * CloseStream answered by the last updates and a close without status code. Nova
 * (/v1/listen): Results per second of audio, KeepAlive, Finalize, and CloseStream
 * (or an empty frame) answered by Metadata and close 1000. Transport-agnostic: the
 * server passes messages in and gets messages and closes out.
 */
import { randomUUID } from 'node:crypto';
import { syntheticWord } from './audio.js';

/** How a session talks back. `close()` without a code sends a close frame with no status. */
export interface SessionIO {
  send(message: Record<string, unknown>): void;
  close(code?: number, reason?: string): void;
}

export interface StreamSession {
  /** Audio arrived. */
  onAudio(bytes: number, now: number): void;
  /** A text frame arrived. */
  onText(text: string, now: number): void;
  /** The time after which the stream counts as idle. */
  readonly idleAt: number;
  /** Ends the stream for idleness. */
  onIdle(): void;
}

interface TurnWord {
  word: string;
  confidence: number;
  start: number;
  end: number;
}

const round = (seconds: number) => Math.round(seconds * 1000) / 1000;

export interface FluxOptions {
  requestId: string;
  bytesPerSecond: number;
  updateIntervalSeconds: number;
  turnSeconds: number;
  idleTimeoutMs: number;
  /** From the eager_eot_threshold query parameter: EagerEndOfTurn is sent only when set. */
  eager: boolean;
  now: number;
}

type Thresholds = { eot_threshold?: number; eager_eot_threshold?: number; eot_timeout_ms?: number };

export class FluxSession implements StreamSession {
  readonly #io: SessionIO;
  readonly #options: FluxOptions;
  #sequence = 0;
  #bytes = 0;
  /** Audio seconds already reported in an update. */
  #reported = 0;
  #turnIndex = 0;
  #turnStart: number | undefined;
  #words: TurnWord[] = [];
  #wordCount = 0;
  #eagerSent = false;
  #closing = false;
  #thresholds: Thresholds = { eot_threshold: 0.7, eot_timeout_ms: 5000 };
  #keyterms: string[] = [];
  idleAt: number;

  constructor(io: SessionIO, options: FluxOptions) {
    this.#io = io;
    this.#options = options;
    this.idleAt = options.now + options.idleTimeoutMs;
    this.#send({ type: 'Connected' });
  }

  #send(message: Record<string, unknown>): void {
    this.#io.send({ ...message, request_id: this.#options.requestId, sequence_id: this.#sequence++ });
  }

  get #audioSeconds(): number {
    return this.#bytes / this.#options.bytesPerSecond;
  }

  onAudio(bytes: number, now: number): void {
    if (this.#closing || bytes === 0) return; // An empty frame carries no audio: it keeps nothing alive.
    this.#bytes += bytes;
    this.idleAt = now + this.#options.idleTimeoutMs;
    const step = this.#options.updateIntervalSeconds;
    while (this.#audioSeconds - this.#reported >= step - 1e-9) this.#report(this.#reported + step);
  }

  /** Reports the audio up to `until` seconds: a turn event where the state changes, else an Update. */
  #report(until: number): void {
    this.#reported = until;
    if (this.#turnStart === undefined) {
      this.#turnStart = until - this.#options.updateIntervalSeconds;
      this.#addWord(until);
      this.#turnInfo('StartOfTurn', 0.05);
      return;
    }
    this.#addWord(until);
    const turnEnd = this.#turnStart + this.#options.turnSeconds;
    const step = this.#options.updateIntervalSeconds;
    if (until >= turnEnd - 1e-9) {
      this.#endTurn(0.9);
    } else if (this.#options.eager && !this.#eagerSent && until >= turnEnd - step - 1e-9) {
      this.#eagerSent = true;
      this.#turnInfo('EagerEndOfTurn', 0.6);
    } else {
      this.#turnInfo('Update', 0.1);
    }
  }

  #addWord(until: number): void {
    const step = this.#options.updateIntervalSeconds;
    this.#words.push({
      word: syntheticWord(this.#wordCount++),
      confidence: 0.98,
      start: round(until - step),
      end: round(until),
    });
  }

  #turnInfo(event: string, confidence: number): void {
    this.#send({
      type: 'TurnInfo',
      event,
      turn_index: this.#turnIndex,
      audio_window_start: round(this.#turnStart ?? 0),
      audio_window_end: round(this.#reported),
      transcript: this.#words.map((w) => w.word).join(' '),
      words: this.#words,
      end_of_turn_confidence: confidence,
    });
  }

  #endTurn(confidence: number): void {
    this.#turnInfo('EndOfTurn', confidence);
    this.#turnIndex += 1;
    this.#turnStart = undefined;
    this.#words = [];
    this.#eagerSent = false;
  }

  onText(text: string, _now: number): void {
    if (this.#closing) return;
    let message: { type?: unknown; thresholds?: unknown; keyterms?: unknown; language_hints?: unknown };
    try {
      message = JSON.parse(text);
    } catch {
      message = undefined as never;
    }
    if (typeof message !== 'object' || message === null || Array.isArray(message)) {
      this.#send({ type: 'Error', code: 'INVALID_JSON', description: 'A text message was not a JSON object.' });
      return;
    }
    switch (message.type) {
      case 'CloseStream':
        this.#closeStream();
        return;
      case 'Configure':
        this.#configure(message);
        return;
      case 'ForceEndTurn':
        if (this.#turnStart !== undefined) this.#endTurn(1);
        return;
      default:
        // Flux has no KeepAlive: it is an unknown message like any other, and does not count as activity.
        this.#send({
          type: 'Error',
          code: 'UNKNOWN_MESSAGE_TYPE',
          description: `Unknown message type ${JSON.stringify(message.type)}.`,
        });
    }
  }

  #configure(message: { thresholds?: unknown; keyterms?: unknown; language_hints?: unknown }): void {
    const thresholds = (message.thresholds ?? {}) as Record<string, unknown>;
    const inRange = (key: string, min: number, max: number) =>
      thresholds[key] === undefined ||
      (typeof thresholds[key] === 'number' && thresholds[key] >= min && thresholds[key] <= max);
    const valid =
      typeof thresholds === 'object' &&
      inRange('eot_threshold', 0.5, 1) &&
      inRange('eager_eot_threshold', 0.3, 0.9) &&
      inRange('eot_timeout_ms', 500, 60000) &&
      (message.keyterms === undefined ||
        (Array.isArray(message.keyterms) && message.keyterms.every((k) => typeof k === 'string')));
    if (!valid) {
      this.#send({ type: 'ConfigureFailure' });
      return;
    }
    this.#thresholds = { ...this.#thresholds, ...(thresholds as Thresholds) };
    if (message.keyterms) this.#keyterms = message.keyterms as string[];
    this.#send({
      type: 'ConfigureSuccess',
      thresholds: this.#thresholds,
      keyterms: this.#keyterms,
      ...(Array.isArray(message.language_hints) ? { language_hints: message.language_hints } : {}),
    });
  }

  /** The last updates for audio not yet reported, the open turn's end, then a close without status. */
  #closeStream(): void {
    this.#closing = true;
    if (this.#audioSeconds > this.#reported + 1e-9) this.#report(this.#audioSeconds);
    if (this.#turnStart !== undefined) this.#endTurn(0.8);
    this.#io.close();
  }

  onIdle(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#send({
      type: 'Error',
      code: 'NET-0001',
      description: 'No audio was received within the timeout window.',
    });
    this.#io.close(1011, 'NET-0001: no audio received within the timeout window');
  }
}

export interface NovaOptions {
  requestId: string;
  model: string;
  bytesPerSecond: number;
  resultIntervalSeconds: number;
  idleTimeoutMs: number;
  now: number;
}

export class NovaSession implements StreamSession {
  readonly #io: SessionIO;
  readonly #options: NovaOptions;
  #bytes = 0;
  #reported = 0;
  #wordCount = 0;
  #closing = false;
  idleAt: number;

  constructor(io: SessionIO, options: NovaOptions) {
    this.#io = io;
    this.#options = options;
    this.idleAt = options.now + options.idleTimeoutMs;
  }

  get #audioSeconds(): number {
    return this.#bytes / this.#options.bytesPerSecond;
  }

  onAudio(bytes: number, now: number): void {
    if (this.#closing) return;
    if (bytes === 0) {
      // An empty binary frame ends the stream, as CloseStream does.
      this.#closeStream();
      return;
    }
    this.#bytes += bytes;
    this.idleAt = now + this.#options.idleTimeoutMs;
    const step = this.#options.resultIntervalSeconds;
    while (this.#audioSeconds - this.#reported >= step - 1e-9) this.#results(this.#reported + step, false);
  }

  #results(until: number, fromFinalize: boolean): void {
    const start = this.#reported;
    this.#reported = until;
    const word = syntheticWord(this.#wordCount++);
    this.#io.send({
      type: 'Results',
      channel_index: [0, 1],
      duration: round(until - start),
      start: round(start),
      is_final: true,
      speech_final: fromFinalize,
      from_finalize: fromFinalize,
      channel: {
        alternatives: [
          {
            transcript: word,
            confidence: 0.98,
            words: [{ word, start: round(start), end: round(until), confidence: 0.98 }],
          },
        ],
      },
      metadata: {
        request_id: this.#options.requestId,
        model_info: { name: this.#options.model, version: 'emulated', arch: 'emulated' },
        model_uuid: '00000000-0000-4000-8000-000000000000',
      },
    });
  }

  onText(text: string, now: number): void {
    if (this.#closing) return;
    let type: unknown;
    try {
      type = (JSON.parse(text) as { type?: unknown } | null)?.type;
    } catch {
      type = undefined;
    }
    this.idleAt = now + this.#options.idleTimeoutMs;
    if (type === 'KeepAlive') return;
    if (type === 'Finalize') {
      if (this.#audioSeconds > this.#reported + 1e-9) this.#results(this.#audioSeconds, true);
      return;
    }
    if (type === 'CloseStream') {
      this.#closeStream();
      return;
    }
    this.#closing = true;
    this.#io.close(1008, 'DATA-0000: the text message was not understood');
  }

  #closeStream(): void {
    this.#closing = true;
    if (this.#audioSeconds > this.#reported + 1e-9) this.#results(this.#audioSeconds, false);
    this.#io.send({
      type: 'Metadata',
      transaction_key: 'deprecated',
      request_id: this.#options.requestId,
      sha256: randomUUID().replaceAll('-', '').padEnd(64, '0'),
      created: new Date().toISOString(),
      duration: round(this.#audioSeconds),
      channels: 1,
    });
    this.#io.close(1000);
  }

  onIdle(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#io.close(1011, 'NET-0001: Deepgram did not receive audio data or a text message within the timeout window.');
  }
}
