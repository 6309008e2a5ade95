/**
 * The proxy port: takes an application's WebSocket handshake, finds the budgets that
 * cover the stream, admits it (or queues, or refuses with a Deepgram-shaped 429), dials
 * the upstream with the client's own handshake (key, subprotocols, query untouched; no
 * compression; the API key injected when configured), relays the upstream's answer,
 * and hands both sockets to a Relay. The slot is taken before the dial and released
 * exactly once, when the upstream socket closes.
 */
import { randomUUID } from 'node:crypto';
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  request,
  type Server,
  STATUS_CODES,
} from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { type Admission, AdmissionRejected, type StreamSlot } from './admission.js';
import { budgetsFor, type EnforcedBudget, keyFileFor, readApiKey, timingsFor } from './budgets.js';
import type { SidecarConfig } from './config.js';
import { type SidecarErrorCode, sidecarErrors } from './errors.js';
import type { SidecarMetrics } from './metrics.js';
import { type ReapReason, Relay } from './relay.js';

/** Hop-by-hop and handshake headers the proxy sets itself rather than copying. */
const notForwarded = new Set([
  'host',
  'connection',
  'upgrade',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'content-length',
  'sec-websocket-extensions',
]);

const reapReasons = new Set(['idle', 'missed-pong', 'max-duration', 'shutdown', 'protocol-error']);
/**
 * The ends a lease's reapedTotal counts: the stream's own doing. A shutdown is the
 * sidecar's, and a protocol error the client's fault, not a sign of idle or stuck streams.
 */
const reapedByRule = new Set(['idle', 'missed-pong', 'max-duration']);

const rejectionCodes = {
  concurrency: 'SLUICE_E_CONCURRENCY',
  'session-rate': 'SLUICE_E_SESSION_RATE',
  'no-grant': 'SLUICE_E_NO_GRANT',
} as const satisfies Record<string, SidecarErrorCode>;

/** One open stream, as /streams shows it: never a header, a key or the query. */
export interface StreamInfo {
  id: string;
  budgets: string[];
  path: string;
  model: string | undefined;
  upstreamRequestId: string | undefined;
  openSeconds: number;
  bytesFromClient: number;
  bytesFromUpstream: number;
}

interface OpenStream {
  info: Omit<StreamInfo, 'openSeconds' | 'bytesFromClient' | 'bytesFromUpstream'>;
  relay: Relay;
}

export interface ProxyOptions {
  config: SidecarConfig;
  budgets: () => readonly EnforcedBudget[];
  admission: Admission;
  metrics: SidecarMetrics;
  log: Logger;
}

/** Writes a short HTTP answer with a JSON body on a raw socket and closes it. */
function answer(socket: Duplex, status: number, body: unknown, headers: Record<string, string | number> = {}): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const text = JSON.stringify(body);
  const lines = [
    `HTTP/1.1 ${status} ${statusText(status)}`,
    'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(text)}`,
    'Connection: close',
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  socket.end(`${lines.join('\r\n')}\r\n\r\n${text}`);
  // A peer that never reads must not keep the socket.
  setTimeout(() => socket.destroy(), 5000).unref();
}

function statusText(status: number): string {
  return STATUS_CODES[status] ?? 'Error';
}

/**
 * Counts an upstream refusal of the handshake: in the metric, and against every budget
 * the stream is charged to, for the lease status the operator reads it from.
 */
function countUpstreamRejection(metrics: SidecarMetrics, slot: StreamSlot | undefined, status: string): void {
  metrics.upstreamRejections.inc({ status });
  for (const gate of slot?.budgets ?? []) gate.upstreamRejected += 1;
}

/** What is wrong with an upgrade request, if anything (RFC 6455 section 4.2.1). */
function handshakeProblem(req: IncomingMessage): string | undefined {
  if (req.method !== 'GET') return `the method must be GET, not ${req.method}`;
  if (!req.url?.startsWith('/') || req.url.startsWith('//')) return 'the request target must be a path';
  if (req.headers.upgrade?.toLowerCase() !== 'websocket') return 'the Upgrade header must be websocket';
  if (!/\bupgrade\b/i.test(req.headers.connection ?? '')) return 'the Connection header must include Upgrade';
  if (req.headers['sec-websocket-version'] !== '13') return 'Sec-WebSocket-Version must be 13';
  const key = req.headers['sec-websocket-key'];
  if (!key || !/^[+/0-9A-Za-z]{22}==$/.test(key)) return 'Sec-WebSocket-Key must be 16 bytes in base64';
  return undefined;
}

export class StreamProxy {
  readonly server: Server;
  readonly #options: ProxyOptions;
  readonly #streams = new Map<string, OpenStream>();
  /** Bytes of the streams that have ended; the open ones add their own at each reading. */
  readonly #endedBytes = { clientToUpstream: 0, upstreamToClient: 0 };
  /** Dials in progress, each with the way to give it up for a shutdown (the client gets 503). */
  readonly #dialling = new Set<() => void>();
  readonly #sweeper: NodeJS.Timeout;
  #draining = false;
  #ending = false;

  constructor(options: ProxyOptions) {
    this.#options = options;
    const { config } = options;
    // Slow or half-sent handshakes get a 408 instead of holding a socket; the check runs this often.
    const checkEvery = Math.max(50, Math.min(1000, Math.floor(config.clientHandshakeTimeoutMs / 4)));
    this.server = createServer(
      {
        headersTimeout: config.clientHandshakeTimeoutMs,
        requestTimeout: config.clientHandshakeTimeoutMs,
        connectionsCheckingInterval: checkEvery,
      },
      (_req, res) => {
        // Plain HTTP on the proxy port: not a stream.
        this.#count('SLUICE_E_NOT_WEBSOCKET');
        const spec = sidecarErrors.SLUICE_E_NOT_WEBSOCKET;
        const body = JSON.stringify({ err_code: spec.errCode, err_msg: spec.message, code: 'SLUICE_E_NOT_WEBSOCKET' });
        res.writeHead(spec.status, { 'content-type': 'application/json', upgrade: 'websocket', connection: 'close' });
        res.end(body);
      },
    );
    this.server.on('upgrade', (req, socket, head) => {
      socket.on('error', () => socket.destroy());
      this.#upgrade(req, socket as Socket, head).catch((error: Error) => {
        options.log.error({ err: error.message }, 'Failed a handshake');
        this.#count('SLUICE_E_INTERNAL');
        const spec = sidecarErrors.SLUICE_E_INTERNAL;
        answer(socket, spec.status, { err_code: spec.errCode, err_msg: spec.message, code: 'SLUICE_E_INTERNAL' });
      });
    });
    this.server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
      // A client that reset its connection mid-request has left: there is no one to answer.
      if (error.code === 'ECONNRESET') {
        socket.destroy();
        return;
      }
      const timeout = error.code === 'ERR_HTTP_REQUEST_TIMEOUT';
      const code: SidecarErrorCode = timeout ? 'SLUICE_E_HANDSHAKE_TIMEOUT' : 'SLUICE_E_BAD_HANDSHAKE';
      this.#count(code);
      const spec = sidecarErrors[code];
      const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : spec.status;
      answer(socket, status, { err_code: spec.errCode, err_msg: spec.message, code });
    });
    this.#sweeper = setInterval(() => {
      const now = performance.now();
      for (const stream of this.#streams.values()) stream.relay.tick(now);
    }, 200);
    this.#sweeper.unref();
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve((this.server.address() as { port: number }).port));
    });
  }

  get openStreams(): number {
    return this.#streams.size;
  }

  streams(): StreamInfo[] {
    const now = performance.now();
    return [...this.#streams.values()].map(({ info, relay }) => ({
      ...info,
      openSeconds: Math.round((now - relay.startedAt) / 100) / 10,
      bytesFromClient: relay.bytesFromClient,
      bytesFromUpstream: relay.bytesFromUpstream,
    }));
  }

  /** Bytes relayed so far by every stream, open or ended; never less than at the last reading. */
  relayedBytes(): { clientToUpstream: number; upstreamToClient: number } {
    let { clientToUpstream, upstreamToClient } = this.#endedBytes;
    for (const { relay } of this.#streams.values()) {
      clientToUpstream += relay.bytesFromClient;
      upstreamToClient += relay.bytesFromUpstream;
    }
    return { clientToUpstream, upstreamToClient };
  }

  /** Stops admitting: queued and new handshakes get 503. Open streams go on. */
  drain(): void {
    this.#draining = true;
    this.#options.admission.close(new Error('shutting down'));
  }

  /** Ends every open stream with CloseStream and close 1012, and resolves when all have ended or `timeoutMs` passed. */
  async endAll(reason: ReapReason, timeoutMs: number): Promise<void> {
    this.#ending = true;
    for (const giveUp of [...this.#dialling]) giveUp();
    for (const stream of this.#streams.values()) stream.relay.reap(reason);
    await this.whenIdle(timeoutMs);
    for (const stream of this.#streams.values()) stream.relay.destroy();
  }

  /** Resolves when no stream is open or being dialled, or after `timeoutMs`. */
  async whenIdle(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.#streams.size + this.#dialling.size > 0 && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  #count(code: SidecarErrorCode): void {
    this.#options.metrics.clientErrors.inc({ code });
  }

  #refuse(
    socket: Duplex,
    code: SidecarErrorCode,
    requestId: string,
    headers: Record<string, string | number> = {},
    /** What went wrong in this case, when it says more than the code's own message. */
    message?: string,
  ): void {
    const spec = sidecarErrors[code];
    answer(
      socket,
      spec.status,
      { err_code: spec.errCode, err_msg: message ?? spec.message, request_id: requestId, code },
      { 'x-sluice-request-id': requestId, 'dg-error': spec.message, ...headers },
    );
  }

  async #upgrade(req: IncomingMessage, client: Socket, head: Buffer): Promise<void> {
    const { config, admission, metrics, log } = this.#options;
    const id = randomUUID();
    const problem = handshakeProblem(req);
    if (problem) {
      this.#count('SLUICE_E_BAD_HANDSHAKE');
      const spec = sidecarErrors.SLUICE_E_BAD_HANDSHAKE;
      answer(client, spec.status, {
        err_code: spec.errCode,
        err_msg: `${spec.message}: ${problem}`,
        request_id: id,
        code: 'SLUICE_E_BAD_HANDSHAKE',
      });
      return;
    }
    if (this.#draining) {
      this.#count('SLUICE_E_SHUTTING_DOWN');
      this.#refuse(client, 'SLUICE_E_SHUTTING_DOWN', id, { 'retry-after': 1 });
      return;
    }
    const url = new URL(req.url ?? '/', 'http://sidecar');
    const route = { path: url.pathname, model: url.searchParams.get('model') ?? undefined };
    const budgets = budgetsFor(this.#options.budgets(), route);
    if (budgets.length === 0 && config.unmatched === 'reject') {
      this.#count('SLUICE_E_NO_BUDGET');
      log.info({ stream: id, path: route.path, model: route.model }, 'Refused a stream no budget covers');
      this.#refuse(client, 'SLUICE_E_NO_BUDGET', id);
      return;
    }
    const names = budgets.map((b) => b.key);

    // A client that leaves while it waits or while the upstream is dialled is noticed at once.
    const departed = new AbortController();
    const onGone = () => departed.abort(new Error('the client left'));
    client.once('end', onGone);
    client.once('close', onGone);
    const stopWatching = () => {
      client.off('end', onGone);
      client.off('close', onGone);
    };

    let slot: StreamSlot | undefined;
    if (budgets.length > 0) {
      try {
        slot = await admission.admit(
          budgets.map((b) => b.gate),
          departed.signal,
        );
      } catch (error) {
        stopWatching();
        if (departed.signal.aborted) {
          client.destroy();
          return;
        }
        if (error instanceof AdmissionRejected) {
          metrics.rejected.inc({ budget: error.budget, reason: error.reason });
          // A stream that queued and then timed out waited too: the histogram shows it.
          if (error.waitedMs > 0) metrics.queueWait.observe(error.waitedMs / 1000);
          log.info(
            { stream: id, budget: error.budget, reason: error.reason, waitedMs: Math.round(error.waitedMs) },
            'Rejected stream',
          );
          this.#refuse(client, rejectionCodes[error.reason], id, {
            'retry-after': error.retryAfterSeconds,
            'x-sluice-reason': error.reason,
            'x-sluice-budget': error.budget,
          });
        } else {
          this.#count('SLUICE_E_SHUTTING_DOWN');
          this.#refuse(client, 'SLUICE_E_SHUTTING_DOWN', id, { 'retry-after': 1 });
        }
        return;
      }
      if (slot.queuedMs !== undefined) metrics.queueWait.observe(slot.queuedMs / 1000);
      if (departed.signal.aborted || client.destroyed) {
        // Admitted for a client that has left: the stream never starts.
        stopWatching();
        slot.cancel();
        client.destroy();
        return;
      }
      for (const name of names) metrics.admitted.inc({ budget: name });
    }
    try {
      this.#dial(req, client, head, { id, route, budgets, names, slot }, departed.signal, stopWatching);
    } catch (error) {
      // Nothing was sent upstream (request() refused its arguments): the slot was never used.
      stopWatching();
      slot?.cancel();
      throw error;
    }
  }

  #dial(
    req: IncomingMessage,
    client: Socket,
    head: Buffer,
    stream: {
      id: string;
      route: { path: string; model: string | undefined };
      budgets: EnforcedBudget[];
      names: string[];
      slot: StreamSlot | undefined;
    },
    departed: AbortSignal,
    stopWatching: () => void,
  ): void {
    const { config, metrics, log } = this.#options;
    const { id, route, budgets, names, slot } = stream;
    const upstreamBase = budgets[0]?.upstream ?? this.#options.budgets()[0]?.upstream;
    if (!upstreamBase) {
      stopWatching();
      slot?.cancel();
      this.#refuse(client, 'SLUICE_E_NO_BUDGET', id);
      return;
    }
    const target = new URL(upstreamBase);
    const basePath = target.pathname.replace(/\/$/, '');
    const headers = this.#upstreamHeaders(req.headers, budgets, target.host);
    if ('error' in headers) {
      stopWatching();
      slot?.cancel();
      log.error({ stream: id, budget: names[0] }, headers.error);
      this.#count('SLUICE_E_CREDENTIALS');
      this.#refuse(client, 'SLUICE_E_CREDENTIALS', id, {}, headers.error);
      return;
    }
    const secure = target.protocol === 'wss:';
    const dialledAt = performance.now();
    const upstreamRequest = (secure ? httpsRequest : request)({
      host: target.hostname,
      port: target.port || (secure ? 443 : 80),
      // The request target as the client sent it, byte for byte (its parsed form only chose the budgets).
      path: `${basePath}${req.url}`,
      method: 'GET',
      headers: headers.headers,
      servername: secure ? target.hostname : undefined,
    });
    let connected = false;
    upstreamRequest.on('socket', (socket) => {
      socket.once(secure ? 'secureConnect' : 'connect', () => {
        connected = true;
      });
    });
    let settled = false;
    const settle = () => {
      const first = !settled;
      settled = true;
      clearTimeout(timer);
      departed.removeEventListener('abort', onDeparted);
      this.#dialling.delete(giveUpForShutdown);
      if (first) metrics.upstreamHandshake.observe((performance.now() - dialledAt) / 1000);
      return first;
    };
    /** Gives up the dial: what the upstream may have opened meanwhile keeps its slot. */
    const abortDial = (answerClient: () => void) => {
      if (!settle()) return;
      upstreamRequest.destroy();
      stopWatching();
      if (connected) slot?.release(false);
      else slot?.cancel();
      answerClient();
    };
    const onDeparted = () => abortDial(() => client.destroy());
    departed.addEventListener('abort', onDeparted, { once: true });
    const giveUpForShutdown = () =>
      abortDial(() => this.#refuse(client, 'SLUICE_E_SHUTTING_DOWN', id, { 'retry-after': 1 }));
    this.#dialling.add(giveUpForShutdown);
    const timer = setTimeout(() => {
      abortDial(() => {
        countUpstreamRejection(metrics, slot, 'timeout');
        log.warn({ stream: id, budget: names[0] }, 'Upstream handshake timed out');
        this.#refuse(client, 'SLUICE_E_UPSTREAM_TIMEOUT', id);
      });
    }, config.upstreamHandshakeTimeoutMs);

    upstreamRequest.on('error', (error: NodeJS.ErrnoException) => {
      if (!settle()) return;
      stopWatching();
      countUpstreamRejection(metrics, slot, 'unreachable');
      // Refused before it connected: nothing was opened. Lost after: the upstream may count it.
      if (connected) slot?.release(false);
      else slot?.cancel();
      log.warn({ stream: id, budget: names[0], err: error.code ?? error.message }, 'Upstream unreachable');
      this.#refuse(client, 'SLUICE_E_UPSTREAM_UNREACHABLE', id);
    });

    upstreamRequest.on('response', (res) => {
      if (!settle()) return;
      stopWatching();
      // The upstream refused the handshake: relay its status, its dg- headers and its body.
      const status = res.statusCode ?? 502;
      countUpstreamRejection(metrics, slot, String(status));
      const chunks: Buffer[] = [];
      let size = 0;
      let done = false;
      const finish = (send: () => void) => {
        if (done) return;
        done = true;
        clearTimeout(bodyTimer);
        slot?.release(true);
        send();
      };
      // A body that never ends must not hold the slot or the client.
      const bodyTimer = setTimeout(() => {
        res.destroy();
        finish(() => this.#refuse(client, 'SLUICE_E_UPSTREAM_UNREACHABLE', id));
      }, config.closeTimeoutMs);
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= 64 * 1024) chunks.push(chunk);
      });
      res.on('error', () => finish(() => this.#refuse(client, 'SLUICE_E_UPSTREAM_UNREACHABLE', id)));
      res.on('end', () =>
        finish(() => {
          const relayed = ['dg-request-id', 'dg-error', 'retry-after', 'content-type']
            .filter((h) => res.headers[h] !== undefined)
            .map((h) => `${h}: ${res.headers[h]}`);
          log.info({ stream: id, budget: names[0], status }, 'Upstream refused the handshake');
          if (client.destroyed || !client.writable) return;
          const body = Buffer.concat(chunks);
          const head = [
            `HTTP/1.1 ${status} ${res.statusMessage ?? statusText(status)}`,
            ...relayed,
            `Content-Length: ${body.length}`,
            'Connection: close',
          ];
          client.end(Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`), body]));
        }),
      );
    });

    upstreamRequest.on('upgrade', (res, upstream: Socket, upstreamHead: Buffer) => {
      if (!settle()) {
        upstream.destroy();
        return;
      }
      stopWatching();
      if (client.destroyed || !client.writable || client.readableEnded) {
        // The client left as the upstream answered: the upstream counts a stream nobody will close.
        upstream.destroy();
        slot?.release(false);
        client.destroy();
        return;
      }
      const upstreamRequestId = res.headers['dg-request-id'] as string | undefined;
      const lines = [`HTTP/1.1 101 Switching Protocols`];
      for (const [name, value] of Object.entries(res.headers)) {
        if (name === 'sec-websocket-extensions' || value === undefined) continue;
        for (const v of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${v}`);
      }
      if (headers.answerProtocol && res.headers['sec-websocket-protocol'] === undefined) {
        lines.push(`sec-websocket-protocol: ${headers.answerProtocol}`);
      }
      lines.push(`x-sluice-request-id: ${id}`);
      client.write(`${lines.join('\r\n')}\r\n\r\n`);
      this.#startRelay(client, head, upstream, upstreamHead, {
        id,
        names,
        route,
        upstreamRequestId,
        slot,
        timings: timingsFor(budgets.length > 0 ? budgets : this.#options.budgets(), {
          closeTimeoutMs: config.closeTimeoutMs,
          maxPayload: config.maxPayloadBytes,
        }),
      });
    });
    upstreamRequest.end();
  }

  /**
   * Hands the two sockets to a relay. Kept apart from the dial so that a stream holds on
   * to its relay and little else: the handshake's requests and headers can be collected.
   */
  #startRelay(
    client: Socket,
    head: Buffer,
    upstream: Socket,
    upstreamHead: Buffer,
    stream: {
      id: string;
      names: string[];
      route: { path: string; model: string | undefined };
      upstreamRequestId: string | undefined;
      slot: StreamSlot | undefined;
      timings: ReturnType<typeof timingsFor>;
    },
  ): void {
    const { metrics, log } = this.#options;
    const { id, names, route, upstreamRequestId, slot } = stream;
    const startedAt = performance.now();
    const relay = new Relay(client, head, upstream, upstreamHead, stream.timings, startedAt, (end) => {
      this.#streams.delete(id);
      slot?.release(end.clean);
      metrics.ended.inc({ cause: end.cause, clean: String(end.clean) });
      if (reapReasons.has(end.cause)) metrics.reaped.inc({ reason: end.cause });
      if (reapedByRule.has(end.cause)) for (const gate of slot?.budgets ?? []) gate.reaped += 1;
      this.#endedBytes.clientToUpstream += end.bytesFromClient;
      this.#endedBytes.upstreamToClient += end.bytesFromUpstream;
      const seconds = (performance.now() - startedAt) / 1000;
      metrics.streamDuration.observe(seconds);
      log.info(
        { stream: id, budget: names[0], cause: end.cause, clean: end.clean, seconds: Math.round(seconds * 10) / 10 },
        'Ended stream',
      );
    });
    this.#streams.set(id, {
      info: { id, budgets: names, path: route.path, model: route.model, upstreamRequestId },
      relay,
    });
    log.info({ stream: id, budget: names[0], path: route.path, model: route.model }, 'Admitted stream');
    // A dial that completed during a shutdown's last phase is ended like the rest.
    if (this.#ending) relay.reap('shutdown');
  }

  /**
   * The headers for the upstream handshake: the client's, less hop-by-hop ones and any
   * compression offer, with the API key set when one is configured. A key replaces the
   * client's own credentials, header or subprotocol; the client still gets the
   * subprotocol it asked for answered.
   */
  #upstreamHeaders(
    incoming: IncomingHttpHeaders,
    budgets: readonly EnforcedBudget[],
    host: string,
  ): { headers: Record<string, string | string[]>; answerProtocol: string | undefined } | { error: string } {
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(incoming)) {
      if (value !== undefined && !notForwarded.has(name)) headers[name] = value;
    }
    headers.host = host;
    headers.connection = 'Upgrade';
    headers.upgrade = 'websocket';
    let answerProtocol: string | undefined;
    const keyFile = keyFileFor(budgets, this.#options.config);
    if (keyFile) {
      let key: string;
      try {
        key = readApiKey(keyFile);
      } catch (error) {
        // The path is configuration, not a secret; the key itself never appears anywhere.
        return { error: (error as Error).message };
      }
      headers.authorization = `Token ${key}`;
      const offered = String(incoming['sec-websocket-protocol'] ?? '')
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean);
      if (offered[0] === 'token' || offered[0] === 'bearer') {
        delete headers['sec-websocket-protocol'];
        answerProtocol = offered[0];
      }
    }
    return { headers, answerProtocol };
  }
}
