/**
 * The Deepgram streaming emulator: WebSocket endpoints /v1/listen and /v2/listen
 * that authenticate, enforce (or only observe) each project's limits, inject faults,
 * and answer like the real service; plus control endpoints for tests: /stats,
 * /metrics, /reset, /faults and /streams. It is the referee of "never over the limit".
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { type RawData, WebSocket, WebSocketServer } from 'ws';
import { audioRate, fluxEncodings, fluxSampleRates, novaEncodings } from './audio.js';
import { type EmulatorConfig, EmulatorConfigError, type ProjectConfig, readEmulatorConfig } from './config.js';
import {
  FaultBook,
  type FaultRule,
  isHandshakeFault,
  parseFaultRule,
  type StreamFacts,
  type StreamFault,
} from './faults.js';
import { type LedgerEntry, type LedgerSnapshot, ProjectLedger, type RejectReason } from './ledger.js';
import { EmulatorMetrics } from './metrics.js';
import { SessionLimit } from './session-limit.js';
import { FluxSession, NovaSession, type StreamSession } from './sessions.js';

/** The Deepgram-shaped body of a refused handshake. */
const errors = {
  unauthorized: { status: 401, code: 'INVALID_AUTH', message: 'Invalid credentials.' },
  tooMany: { status: 429, code: 'TOO_MANY_REQUESTS', message: 'Too many requests. Please try again later' },
} as const;

/** Deepgram's err_code for an injected status. */
function errorCode(status: number): string {
  const codes: Record<number, string> = {
    401: 'INVALID_AUTH',
    402: 'ASR_PAYMENT_REQUIRED',
    403: 'INSUFFICIENT_PERMISSIONS',
    429: 'TOO_MANY_REQUESTS',
  };
  return codes[status] ?? (status >= 500 ? 'INTERNAL_SERVER_ERROR' : 'Bad Request');
}

const token = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** What ws would refuse in an upgrade request, checked first so the refusal is Deepgram-shaped and counted. */
function handshakeProblem(req: IncomingMessage): string | undefined {
  if (req.method !== 'GET') return `the method must be GET, not ${req.method}`;
  if (req.headers.upgrade?.toLowerCase() !== 'websocket') return 'the Upgrade header must be websocket';
  if (req.headers['sec-websocket-version'] !== '13') return 'Sec-WebSocket-Version must be 13';
  const key = req.headers['sec-websocket-key'];
  if (!key || !/^[+/0-9A-Za-z]{22}==$/.test(key)) return 'Sec-WebSocket-Key must be 16 bytes in base64';
  const protocols = req.headers['sec-websocket-protocol'];
  if (protocols !== undefined && !protocols.split(',').every((p) => token.test(p.trim()))) {
    return 'Sec-WebSocket-Protocol must be a list of tokens';
  }
  return undefined;
}

export interface ProjectStats extends LedgerSnapshot {
  id: string;
  sessionStartsLastMinute: number;
  /** The new-session limit in force now (after autoscaling), or null without one. */
  sessionLimitPerMinute: number | null;
  /** Starts that went over the new-session limit while observing. */
  sessionRateExceeded: number;
}

export interface EmulatorStats {
  projects: Record<string, ProjectStats>;
  /** Handshakes refused before a project was known (bad path, bad key). */
  unattributed: { rejected: Partial<Record<RejectReason, number>> };
  streams: number;
}

interface Project {
  config: ProjectConfig;
  ledger: ProjectLedger;
  sessions: SessionLimit | undefined;
  sessionRateExceeded: number;
}

interface OpenStream {
  facts: StreamFacts;
  socket: WebSocket;
  session: StreamSession;
  audioBytes: number;
  /** Set by the silence fault: the stream keeps receiving but says nothing more. */
  mute: { silent: boolean };
  timers: NodeJS.Timeout[];
}

export interface EmulatorOptions {
  port?: number;
  host?: string;
  /** The clock in milliseconds; monotonic. Tests may inject their own. */
  now?: () => number;
}

/** Reads the key from `Authorization: Token|Bearer …` or the `token`/`bearer` subprotocol. */
function credentials(req: IncomingMessage): { key: string; subprotocol?: string } | undefined {
  const header = req.headers.authorization;
  if (header) {
    const match = /^(token|bearer)\s+(\S+)\s*$/i.exec(header);
    return match ? { key: match[2] as string } : undefined;
  }
  const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
  const scheme = offered[0]?.toLowerCase();
  if ((scheme === 'token' || scheme === 'bearer') && offered[1]) return { key: offered[1], subprotocol: offered[0] };
  return undefined;
}

/** Answers a handshake with an HTTP error and a Deepgram-shaped body, then ends the socket. */
function refuse(socket: Duplex, status: number, code: string, message: string, requestId: string): void {
  if (socket.destroyed) return;
  const body = JSON.stringify({ err_code: code, err_msg: message, request_id: requestId });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
      'Content-Type: application/json\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      `dg-request-id: ${requestId}\r\n` +
      `dg-error: ${message}\r\n` +
      'Connection: close\r\n\r\n' +
      body,
  );
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value, null, 2);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

async function readBody(req: IncomingMessage, limit = 64 * 1024): Promise<string> {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > limit) throw new Error('request body too large');
  }
  return body;
}

export class Emulator {
  readonly config: EmulatorConfig;
  readonly faults: FaultBook;
  readonly metrics: EmulatorMetrics;
  readonly #server: Server;
  readonly #wss: WebSocketServer;
  readonly #now: () => number;
  readonly #projects = new Map<string, Project>();
  readonly #projectByKey = new Map<string, Project>();
  readonly #streams = new Map<string, OpenStream>();
  /** Handshakes in progress and sockets being closed for the session rate: close() ends them too. */
  readonly #handshaking = new Set<Duplex>();
  readonly #rateClosed = new Set<WebSocket>();
  readonly #closing = new AbortController();
  #unattributed: Partial<Record<RejectReason, number>> = {};
  readonly #sweeper: NodeJS.Timeout;
  #port = 0;

  private constructor(config: EmulatorConfig, options: EmulatorOptions) {
    this.config = config;
    this.#now = options.now ?? (() => performance.now());
    const now = this.#now();
    for (const project of config.projects) {
      const entry: Project = {
        config: project,
        ledger: new ProjectLedger({
          limit: project.maxConcurrentStreams,
          enforce: project.enforce,
          releaseDelayMs: project.releaseDelaySeconds * 1000,
        }),
        sessions: project.newSessions ? new SessionLimit(project.newSessions, now) : undefined,
        sessionRateExceeded: 0,
      };
      this.#projects.set(project.id, entry);
      for (const key of project.keys) this.#projectByKey.set(key, entry);
    }
    this.faults = new FaultBook(config.faults, config.seed);
    this.metrics = new EmulatorMetrics(() => this.stats());
    this.#wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: config.maxPayloadBytes,
      // A browser offering ["token", key] must get one protocol back; Deepgram answers "token".
      handleProtocols: (protocols) => {
        const first = protocols.values().next().value;
        return first === 'token' || first === 'bearer' ? first : false;
      },
    });
    this.#wss.on('headers', (headers, req) => {
      headers.push(`dg-request-id: ${(req as IncomingMessage & { requestId: string }).requestId}`);
    });
    this.#server = createServer((req, res) => {
      this.#control(req, res).catch((error: Error) => sendJson(res, 500, { error: error.message }));
    });
    this.#server.on('upgrade', (req, socket, head) => {
      socket.on('error', () => socket.destroy());
      this.#handshaking.add(socket);
      this.#upgrade(req, socket, head)
        .catch(() => socket.destroy())
        .finally(() => this.#handshaking.delete(socket));
    });
    this.#server.on('clientError', (_error, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    });
    // One timer for every stream's idle check: resetting a timer per audio frame would cost more.
    this.#sweeper = setInterval(() => this.#sweep(), 100);
    this.#sweeper.unref();
  }

  /**
   * Starts an emulator on loopback (a free port unless one is given). The configuration
   * may leave out anything that has a default; an invalid one throws EmulatorConfigError.
   */
  static async start(config: unknown, options: EmulatorOptions = {}): Promise<Emulator> {
    const emulator = new Emulator(readEmulatorConfig(config), options);
    await new Promise<void>((resolve, reject) => {
      emulator.#server.once('error', reject);
      emulator.#server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
    });
    emulator.#port = (emulator.#server.address() as { port: number }).port;
    return emulator;
  }

  get port(): number {
    return this.#port;
  }

  /** Base URL for clients, e.g. ws://127.0.0.1:8787 */
  get url(): string {
    return `ws://127.0.0.1:${this.#port}`;
  }

  /** Base URL of the control endpoints. */
  get httpUrl(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  stats(): EmulatorStats {
    const now = this.#now();
    const projects: Record<string, ProjectStats> = {};
    for (const [id, project] of this.#projects) {
      projects[id] = {
        id,
        ...project.ledger.snapshot(now),
        sessionStartsLastMinute: project.sessions?.startsInWindow(now) ?? 0,
        sessionLimitPerMinute: project.sessions?.limit(now) ?? null,
        sessionRateExceeded: project.sessionRateExceeded,
      };
    }
    return { projects, unattributed: { rejected: { ...this.#unattributed } }, streams: this.#streams.size };
  }

  /** Starts the books afresh: peaks, moments and counters; open streams and stale slots still count. */
  reset(): void {
    const now = this.#now();
    for (const project of this.#projects.values()) {
      project.ledger.reset(now);
      project.sessionRateExceeded = 0;
    }
    this.#unattributed = {};
  }

  /**
   * A project's acceptances and ends since the last reset, on the emulator's clock: what
   * tests prove orderings from ("accepted only once the upstream had released those slots").
   * Refuses when the book has dropped old entries: an ordering proved from part of it proves nothing.
   */
  ledger(project: string): LedgerEntry[] {
    const ledger = this.#projects.get(project)?.ledger;
    if (!ledger) throw new Error(`The emulator has no project ${project}`);
    if (ledger.droppedEntries > 0) throw new Error(`The ledger of ${project} dropped ${ledger.droppedEntries} entries`);
    return ledger.entries();
  }

  /** Handshakes still being answered (held by a latency fault, say); 0 once each has been settled. */
  get handshakesInProgress(): number {
    return this.#handshaking.size;
  }

  /** Open streams, for tests and the /streams endpoint. */
  streams(): {
    requestId: string;
    project: string;
    path: string;
    model?: string;
    tag: string[];
    audioBytes: number;
    silent: boolean;
  }[] {
    return [...this.#streams.values()].map((s) => ({
      requestId: s.facts.requestId,
      project: s.facts.project,
      path: s.facts.path,
      ...(s.facts.model === undefined ? {} : { model: s.facts.model }),
      tag: s.facts.tag,
      audioBytes: s.audioBytes,
      silent: s.mute.silent,
    }));
  }

  /** Adds a fault rule; stream faults also hit matching streams already open. */
  addFault(rule: FaultRule): void {
    this.faults.add(rule);
    if (isHandshakeFault(rule.action)) return;
    for (const stream of this.#streams.values()) {
      if (this.faults.hits(rule, stream.facts)) this.#applyStreamFault(stream, rule.action);
    }
  }

  /** Stops accepting, ends every stream without a close handshake, and closes the server. */
  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    this.#closing.abort();
    for (const socket of this.#handshaking) socket.destroy();
    for (const ws of this.#rateClosed) ws.terminate();
    for (const stream of this.#streams.values()) stream.socket.terminate();
    this.#wss.close();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #reject(project: Project | undefined, reason: RejectReason): void {
    if (project) project.ledger.rejected(reason);
    else this.#unattributed[reason] = (this.#unattributed[reason] ?? 0) + 1;
    this.metrics.handshake(project?.config.id ?? '', 'rejected', reason);
  }

  async #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const requestId = randomUUID();
    const url = new URL(req.url ?? '/', 'http://emulator');
    const path = url.pathname;
    const problem = handshakeProblem(req);
    if (problem) {
      this.#reject(undefined, 'bad-request');
      refuse(socket, 400, 'Bad Request', `Not a valid WebSocket handshake: ${problem}.`, requestId);
      return;
    }
    if (path !== '/v1/listen' && path !== '/v2/listen') {
      this.#reject(undefined, 'not-found');
      refuse(socket, 404, 'NOT_FOUND', `No streaming endpoint at ${path}.`, requestId);
      return;
    }
    const auth = credentials(req);
    const project = auth ? this.#projectByKey.get(auth.key) : undefined;
    if (!project) {
      this.#reject(undefined, 'unauthorized');
      const { status, code, message } = errors.unauthorized;
      refuse(socket, status, code, message, requestId);
      return;
    }
    const model = url.searchParams.get('model') ?? undefined;
    const facts: StreamFacts = {
      project: project.config.id,
      path,
      model,
      tag: url.searchParams.getAll('tag'),
      requestId,
    };

    const hits = this.faults.select(facts);
    for (const fault of hits) {
      if (fault.type === 'latency')
        await delay(fault.ms, undefined, { signal: this.#closing.signal }).catch(() => undefined);
    }
    // A client that left while we waited, or an emulator closing meanwhile, ends the handshake here, uncounted.
    if (this.#closing.signal.aborted || socket.destroyed || !socket.readable || !socket.writable) {
      socket.destroy();
      return;
    }
    if (hits.some((f) => f.type === 'refuse')) {
      this.#reject(project, 'fault-refused');
      socket.destroy();
      return;
    }
    const status = hits.find((f) => f.type === 'status');
    if (status) {
      this.#reject(project, 'fault-status');
      refuse(socket, status.status, errorCode(status.status), 'The stream was refused (injected fault).', requestId);
      return;
    }

    const flux = path === '/v2/listen';
    if (flux && !model) {
      this.#reject(project, 'bad-request');
      refuse(socket, 400, 'Bad Request', 'The model query parameter is required on /v2/listen.', requestId);
      return;
    }
    const rate = audioRate(url.searchParams.get('encoding'), url.searchParams.get('sample_rate'), {
      encodings: flux ? fluxEncodings : novaEncodings,
      ...(flux ? { sampleRates: fluxSampleRates } : {}),
    });
    if ('problem' in rate) {
      this.#reject(project, 'bad-request');
      refuse(socket, 400, 'Bad Request', rate.problem, requestId);
      return;
    }

    const now = this.#now();
    if (!project.ledger.hasRoom(now)) {
      this.#reject(project, 'concurrency');
      refuse(socket, errors.tooMany.status, errors.tooMany.code, errors.tooMany.message, requestId);
      return;
    }
    let closeForRate = false;
    if (project.sessions && !project.sessions.allows(now)) {
      if (!project.config.enforce) {
        project.sessionRateExceeded += 1;
      } else if (project.config.newSessions?.rejectWith === 'close') {
        closeForRate = true;
      } else {
        this.#reject(project, 'session-rate');
        refuse(socket, errors.tooMany.status, errors.tooMany.code, errors.tooMany.message, requestId);
        return;
      }
    }

    (req as IncomingMessage & { requestId: string }).requestId = requestId;
    if (closeForRate) {
      this.#reject(project, 'session-rate');
      this.#wss.handleUpgrade(req, socket, head, (ws) => {
        this.#rateClosed.add(ws);
        ws.on('error', () => {});
        ws.once('close', () => this.#rateClosed.delete(ws));
        ws.close(1008, 'Too many concurrent sessions');
      });
      return;
    }
    const streamFaults = hits.filter((f): f is StreamFault => !isHandshakeFault(f));
    // Counted only once ws has completed the upgrade, so a handshake it drops is never counted.
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      project.ledger.opened(now, { requestId, tags: facts.tag });
      project.sessions?.record(now);
      this.metrics.handshake(project.config.id, 'accepted', '');
      this.#open(ws, project, facts, rate.bytesPerSecond, url, streamFaults);
    });
  }

  #open(
    ws: WebSocket,
    project: Project,
    facts: StreamFacts,
    bytesPerSecond: number,
    url: URL,
    faults: StreamFault[],
  ): void {
    const now = this.#now();
    const mute = { silent: false };
    const io = {
      send: (message: Record<string, unknown>) => {
        if (!mute.silent && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
      },
      close: (code?: number, reason?: string) => {
        if (mute.silent) {
          // A silent upstream says nothing, a close frame included: it just drops the connection.
          ws.terminate();
          return;
        }
        if (code === undefined) ws.close();
        else ws.close(code, reason);
      },
    };
    const session =
      facts.path === '/v2/listen'
        ? new FluxSession(io, {
            requestId: facts.requestId,
            bytesPerSecond,
            updateIntervalSeconds: this.config.flux.updateIntervalSeconds,
            turnSeconds: this.config.flux.turnSeconds,
            idleTimeoutMs: this.config.flux.idleTimeoutSeconds * 1000,
            eager: url.searchParams.has('eager_eot_threshold'),
            now,
          })
        : new NovaSession(io, {
            requestId: facts.requestId,
            model: facts.model ?? 'nova-3',
            bytesPerSecond,
            resultIntervalSeconds: this.config.nova.resultIntervalSeconds,
            idleTimeoutMs: this.config.nova.idleTimeoutSeconds * 1000,
            now,
          });
    const stream: OpenStream = { facts, socket: ws, session, audioBytes: 0, mute, timers: [] };
    this.#streams.set(facts.requestId, stream);

    ws.on('message', (data: RawData, isBinary: boolean) => {
      const at = this.#now();
      if (isBinary) {
        const bytes = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : (data as Buffer).byteLength;
        stream.audioBytes += bytes;
        stream.session.onAudio(bytes, at);
      } else {
        stream.session.onText(data.toString(), at);
      }
    });
    // ws answers a protocol error (1002, 1007, 1009) with a close frame and stops reading,
    // so it never sees the peer's answer: the emulator itself ended such a stream.
    let protocolError = false;
    ws.on('error', () => {
      protocolError = true;
    });
    ws.once('close', (code) => {
      for (const timer of stream.timers) clearTimeout(timer);
      this.#streams.delete(facts.requestId);
      // A normal end is a completed close handshake: the peer's close frame arrived (ws
      // reports 1006 when none did), whoever closed first. A close of ours left
      // unanswered is an abnormal end, and the provider may still count the stream.
      const clean = code !== 1006 || protocolError;
      project.ledger.closed(this.#now(), clean);
      this.metrics.streamEnded(project.config.id, clean);
    });

    for (const fault of faults) this.#applyStreamFault(stream, fault);
  }

  #applyStreamFault(stream: OpenStream, fault: StreamFault): void {
    const act = () => {
      if (fault.type === 'reset') stream.socket.terminate();
      else if (fault.type === 'silence') stream.mute.silent = true;
      else {
        stream.socket.close(fault.code, fault.reason);
      }
    };
    if (fault.afterMs === 0) act();
    else stream.timers.push(setTimeout(act, fault.afterMs));
  }

  #sweep(): void {
    const now = this.#now();
    for (const stream of this.#streams.values()) {
      if (now >= stream.session.idleAt) stream.session.onIdle();
    }
  }

  async #control(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://emulator');
    const route = `${req.method} ${url.pathname}`;
    if (url.pathname === '/v1/listen' || url.pathname === '/v2/listen') {
      res.setHeader('upgrade', 'websocket');
      sendJson(res, 426, { err_code: 'UPGRADE_REQUIRED', err_msg: 'This endpoint speaks WebSocket only.' });
      return;
    }
    switch (route) {
      case 'GET /stats':
        sendJson(res, 200, this.stats());
        return;
      case 'GET /metrics':
        res.writeHead(200, { 'content-type': this.metrics.contentType });
        res.end(await this.metrics.render());
        return;
      case 'POST /reset':
        this.reset();
        sendJson(res, 200, this.stats());
        return;
      case 'GET /streams':
        sendJson(res, 200, this.streams());
        return;
      case 'GET /faults':
        sendJson(res, 200, this.faults.rules);
        return;
      case 'DELETE /faults':
        this.faults.clear();
        res.writeHead(204).end();
        return;
      case 'POST /faults': {
        let input: unknown;
        try {
          input = JSON.parse(await readBody(req));
        } catch (error) {
          sendJson(res, 400, { error: `the body must be one fault rule as JSON: ${(error as Error).message}` });
          return;
        }
        const problems: string[] = [];
        const rule = parseFaultRule(input, 'fault', problems);
        if (problems.length > 0) {
          sendJson(res, 400, { error: new EmulatorConfigError(problems).message, problems });
          return;
        }
        this.addFault(rule);
        sendJson(res, 201, rule);
        return;
      }
    }
    const faultId = /^DELETE \/faults\/([^/]+)$/.exec(route)?.[1];
    if (faultId !== undefined) {
      if (this.faults.remove(decodeURIComponent(faultId))) res.writeHead(204).end();
      else sendJson(res, 404, { error: `no fault ${decodeURIComponent(faultId)}` });
      return;
    }
    sendJson(res, 404, { error: `no endpoint ${route}` });
  }
}
