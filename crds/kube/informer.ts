/**
 * Shared by the operator and the sidecar, as everything under crds/ is: one list-then-watch
 * plumbing for both programs.
 *
 * An informer: a cache of one kind of object in one namespace (or all), kept current by
 * listing and then watching from the list's resourceVersion, with handlers for adds,
 * updates and deletes. A broken watch restarts with backoff; an expired resourceVersion
 * leads to a fresh list whose differences are emitted, so no delete is ever missed.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { ApiException, type KubeConfig, type KubernetesObject, Watch } from '@kubernetes/client-node';
import { type Logger, pino } from 'pino';
import { type Clock, systemClock } from '../api/clock.js';
import { describeFailure } from './request-failure.js';

/**
 * Where a kind of object lives in the API; `group` is empty for the core group. The
 * generated `streamBudgetResource` and `streamLeaseResource` of crds/api are ones.
 */
export interface ResourceType {
  group: string;
  version: string;
  plural: string;
}

export const podsResource: ResourceType = { group: '', version: 'v1', plural: 'pods' };

/**
 * What an informer tells its handlers. Objects are the API's JSON as served (timestamps
 * are strings, whatever the generated types say) and are shared with the cache: never
 * change them. A delete found by a relist carries the last state the informer saw.
 */
export interface InformerHandlers<T> {
  onAdd?(object: T): void;
  onUpdate?(old: T, object: T): void;
  onDelete?(object: T): void;
}

export interface InformerOptions {
  resource: ResourceType;
  /** Watches every namespace when absent. */
  namespace?: string;
  labelSelector?: string;
  /** E.g. `metadata.name=voicebot-0`, to watch one object by name. */
  fieldSelector?: string;
  /** The first restart after a failure waits this long; each further failure doubles it. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** The API server ends each watch after this long, and the informer starts the next. */
  watchTimeoutSeconds?: number;
  /** Objects per page of a list. */
  pageSize?: number;
  /** A page of a list that takes longer (60 s by default) fails and is retried: no list hangs forever. */
  listTimeoutMs?: number;
  /**
   * Spreads each backoff by up to this fraction either way, and shortens each watch by up
   * to it, so that many clients of one API server (a sidecar per pod) do not act in step.
   * None by default.
   */
  jitter?: number;
  clock?: Clock;
  log?: Logger;
}

/** The informer was stopped before it had listed its objects once. */
export class InformerStopped extends Error {
  readonly code = 'SLUICE_E_INFORMER_STOPPED';

  constructor(resource: string) {
    super(`The informer of ${resource} was stopped before it synced`);
    this.name = 'InformerStopped';
  }
}

interface WatchAttempt {
  id: number;
  startedAt: number;
  connected: boolean;
  events: number;
  expired: boolean;
  controller?: AbortController;
  watchdog?: unknown;
}

/** A watch that ends sooner than this without an event counts as a failure, as in client-go. */
const shortestHealthyWatchMs = 1000;
/** Slack beyond the watch's server-side timeout before the informer calls it dead. */
const watchdogSlackMs = 30_000;

/** Keeps a cache of one kind of object current and tells handlers what changed. */
export class Informer<T extends KubernetesObject> {
  readonly #config: KubeConfig;
  readonly #watch: Watch;
  readonly #resource: ResourceType;
  readonly #namespace: string | undefined;
  /** The label and field selectors, as a list's and a watch's query carry them. */
  readonly #selectors: Record<string, string> = {};
  readonly #initialBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #watchTimeoutSeconds: number;
  readonly #pageSize: number;
  readonly #listTimeoutMs: number;
  readonly #jitter: number;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #path: string;

  readonly #objects = new Map<string, T>();
  #handlers: InformerHandlers<T>[] = [];
  #resourceVersion = '';
  #needsList = true;
  #failures = 0;
  /** A failure was logged, and no watch has connected since. */
  #failing = false;
  #attempts = 0;
  #current: WatchAttempt | undefined;
  #listAbort: AbortController | undefined;
  #restartTimer: unknown;
  #step: Promise<void> | undefined;
  #started = false;
  #stopped = false;
  #synced = false;
  readonly #syncedPromise: Promise<void>;
  #resolveSynced: () => void = () => undefined;
  #rejectSynced: (error: Error) => void = () => undefined;

  constructor(config: KubeConfig, options: InformerOptions) {
    this.#config = config;
    this.#watch = new Watch(config);
    this.#resource = options.resource;
    this.#namespace = options.namespace;
    if (options.labelSelector) this.#selectors.labelSelector = options.labelSelector;
    if (options.fieldSelector) this.#selectors.fieldSelector = options.fieldSelector;
    this.#initialBackoffMs = options.initialBackoffMs ?? 800;
    this.#maxBackoffMs = options.maxBackoffMs ?? 30_000;
    this.#watchTimeoutSeconds = options.watchTimeoutSeconds ?? 300;
    this.#pageSize = options.pageSize ?? 500;
    this.#listTimeoutMs = options.listTimeoutMs ?? 60_000;
    this.#jitter = options.jitter ?? 0;
    this.#clock = options.clock ?? systemClock;
    this.#log = (options.log ?? pino({ enabled: false })).child({
      resource: this.#resource.plural,
      namespace: this.#namespace ?? '*',
    });
    const { group, version, plural } = this.#resource;
    const base = group ? `/apis/${group}/${version}` : `/api/${version}`;
    this.#path = this.#namespace
      ? `${base}/namespaces/${encodeURIComponent(this.#namespace)}/${plural}`
      : `${base}/${plural}`;
    this.#syncedPromise = new Promise<void>((resolve, reject) => {
      this.#resolveSynced = resolve;
      this.#rejectSynced = reject;
    });
    // Nobody has to wait for the sync; a stop before it must not be an unhandled rejection.
    this.#syncedPromise.catch(() => undefined);
  }

  /** Adds handlers, tells them of every object already cached, and returns a function that removes them. */
  addHandlers(handlers: InformerHandlers<T>): () => void {
    this.#handlers.push(handlers);
    for (const object of this.#objects.values()) this.#call('onAdd', () => handlers.onAdd?.(object));
    return () => {
      this.#handlers = this.#handlers.filter((h) => h !== handlers);
    };
  }

  /** Lists, then watches, until `stop()`. */
  start(): void {
    if (this.#stopped) throw new InformerStopped(this.#resource.plural);
    if (this.#started) return;
    this.#started = true;
    this.#run();
  }

  /** Resolves once the first full list is in the cache; rejects if the informer stops before. */
  synced(): Promise<void> {
    return this.#syncedPromise;
  }

  get hasSynced(): boolean {
    return this.#synced;
  }

  /** The resourceVersion the next watch starts from. */
  get resourceVersion(): string {
    return this.#resourceVersion;
  }

  /** Every cached object, or those of one namespace. */
  list(namespace?: string): T[] {
    const objects = [...this.#objects.values()];
    return namespace === undefined ? objects : objects.filter((o) => (o.metadata?.namespace ?? '') === namespace);
  }

  /** The cached object; `namespace` is empty for cluster-scoped kinds. */
  get(namespace: string, name: string): T | undefined {
    return this.#objects.get(`${namespace}/${name}`);
  }

  /** Ends the watch, any list in flight and every timer; the informer cannot start again. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#restartTimer !== undefined) this.#clock.clearTimer(this.#restartTimer);
    this.#restartTimer = undefined;
    this.#listAbort?.abort();
    this.#endAttempt(this.#current);
    if (!this.#synced) this.#rejectSynced(new InformerStopped(this.#resource.plural));
    await this.#step?.catch(() => undefined);
  }

  #run(): void {
    this.#restartTimer = undefined;
    if (this.#stopped) return;
    this.#step = this.#needsList ? this.#relist() : this.#startWatch();
  }

  #scheduleRun(delayMs: number): void {
    if (this.#stopped) return;
    this.#restartTimer = this.#clock.setTimer(() => this.#run(), delayMs);
  }

  #backoffMs(): number {
    const backoffMs = Math.min(this.#maxBackoffMs, this.#initialBackoffMs * 2 ** (this.#failures - 1));
    return this.#jitter > 0 ? Math.round(backoffMs * (1 - this.#jitter + 2 * this.#jitter * Math.random())) : backoffMs;
  }

  /** Logs a failure: the first in a row and every tenth as a warning, so an API server away for long floods no log. */
  #logFailure(error: unknown, delayMs: number, message: string): void {
    this.#failing = true;
    const level = this.#failures === 1 || this.#failures % 10 === 0 ? 'warn' : 'debug';
    this.#log[level]({ ...describeFailure(error), failures: this.#failures, delayMs }, message);
  }

  async #relist(): Promise<void> {
    let listed: { items: T[]; resourceVersion: string };
    try {
      listed = await this.#listAll();
    } catch (error) {
      if (this.#stopped) return;
      this.#failures += 1;
      const delayMs = this.#backoffMs();
      this.#logFailure(error, delayMs, 'Listing failed; retrying');
      this.#scheduleRun(delayMs);
      return;
    }
    if (this.#stopped) return;
    this.#replace(listed.items);
    this.#resourceVersion = listed.resourceVersion;
    this.#needsList = false;
    if (!this.#synced) {
      this.#synced = true;
      this.#resolveSynced();
    }
    this.#log.debug({ objects: listed.items.length, resourceVersion: listed.resourceVersion }, 'Listed objects');
    this.#scheduleRun(0);
  }

  /** Makes the cache what the list says, and tells handlers the differences. */
  #replace(items: T[]): void {
    const fresh = new Map(items.map((item) => [keyOf(item), item]));
    for (const [key, old] of this.#objects) {
      const now = fresh.get(key);
      if (!now || now.metadata?.uid !== old.metadata?.uid) {
        this.#objects.delete(key);
        this.#emit('onDelete', (h) => h.onDelete?.(old));
      }
    }
    for (const [key, object] of fresh) this.#upsert(key, object);
  }

  #upsert(key: string, object: T): void {
    const old = this.#objects.get(key);
    this.#objects.set(key, object);
    if (!old) {
      this.#emit('onAdd', (h) => h.onAdd?.(object));
    } else if (old.metadata?.resourceVersion !== object.metadata?.resourceVersion) {
      this.#emit('onUpdate', (h) => h.onUpdate?.(old, object));
    }
  }

  async #startWatch(): Promise<void> {
    this.#attempts += 1;
    const attempt: WatchAttempt = {
      id: this.#attempts,
      startedAt: this.#clock.now(),
      connected: false,
      events: 0,
      expired: false,
    };
    this.#current = attempt;
    const timeoutSeconds = Math.round(this.#watchTimeoutSeconds * (1 - this.#jitter * Math.random()));
    const query = {
      ...this.#selectors,
      resourceVersion: this.#resourceVersion,
      allowWatchBookmarks: true,
      timeoutSeconds,
    };
    // The server ends the watch at its timeout; silence well past that (a dead connection,
    // or one that never answered) ends it here.
    attempt.watchdog = this.#clock.setTimer(() => this.#endAttempt(attempt), timeoutSeconds * 1000 + watchdogSlackMs);
    let controller: AbortController;
    try {
      controller = await this.#watch.watch(
        this.#path,
        query,
        (type, object) => this.#onEvent(attempt, type, object),
        (error) => this.#onWatchEnd(attempt, error),
      );
    } catch (error) {
      this.#onWatchEnd(attempt, error);
      return;
    }
    attempt.controller = controller;
    // Watch resolves only once the response has begun (or failed), so this is the first
    // moment a stop or the watchdog can abort it.
    if (this.#current !== attempt || this.#stopped) {
      controller.abort();
    } else if (!controller.signal.aborted) {
      attempt.connected = true;
      if (this.#failing) this.#log.info({ failures: this.#failures }, 'Resumed watching');
      this.#failing = false;
    }
  }

  #onEvent(attempt: WatchAttempt, type: string, object: unknown): void {
    if (this.#current !== attempt || this.#stopped) return;
    attempt.connected = true;
    if (type === 'ERROR') {
      const status = object as { code?: number; reason?: string; message?: string };
      if (status.code === 410) attempt.expired = true;
      else this.#log.warn({ code: status.code, reason: status.reason }, 'The watch reported an error');
      return;
    }
    const item = object as T;
    attempt.events += 1;
    const resourceVersion = item.metadata?.resourceVersion;
    if (type === 'ADDED' || type === 'MODIFIED') {
      this.#upsert(keyOf(item), item);
    } else if (type === 'DELETED') {
      const key = keyOf(item);
      if (this.#objects.delete(key)) this.#emit('onDelete', (h) => h.onDelete?.(item));
    }
    if (resourceVersion) this.#resourceVersion = resourceVersion;
  }

  #onWatchEnd(attempt: WatchAttempt, error: unknown): void {
    if (this.#current !== attempt) return;
    this.#current = undefined;
    if (attempt.watchdog !== undefined) this.#clock.clearTimer(attempt.watchdog);
    if (this.#stopped) return;
    const lasted = this.#clock.now() - attempt.startedAt;
    const healthy = attempt.connected && (attempt.events > 0 || lasted >= shortestHealthyWatchMs);
    const expired = attempt.expired || describeFailure(error).code === 410;
    if (healthy) this.#failures = 0;
    if (error || !healthy || expired) this.#failures += 1;
    if (expired) this.#needsList = true;
    const delayMs = this.#failures === 0 ? 0 : this.#backoffMs();
    if (expired) {
      this.#log.info({ resourceVersion: this.#resourceVersion, delayMs }, 'The resourceVersion expired; relisting');
    } else if (error || !healthy) {
      this.#logFailure(error, delayMs, 'The watch failed; restarting it');
    }
    this.#scheduleRun(delayMs);
  }

  /** Aborts a watch; its end is then handled as any other. */
  #endAttempt(attempt: WatchAttempt | undefined): void {
    if (!attempt) return;
    if (attempt.controller) {
      attempt.controller.abort();
    } else if (this.#stopped) {
      // Still connecting: #startWatch aborts the watch as soon as it can.
      if (attempt.watchdog !== undefined) this.#clock.clearTimer(attempt.watchdog);
    } else {
      this.#onWatchEnd(attempt, new Error('The watch went silent'));
    }
  }

  async #listAll(): Promise<{ items: T[]; resourceVersion: string }> {
    const items: T[] = [];
    let continueToken: string | undefined;
    let pageSize = this.#pageSize;
    for (;;) {
      const query = new URLSearchParams(this.#selectors);
      if (pageSize > 0) query.set('limit', String(pageSize));
      if (continueToken) query.set('continue', continueToken);
      let page: ObjectList<T>;
      try {
        page = (await this.#getJson(`${this.#path}?${query}`)) as ObjectList<T>;
      } catch (error) {
        // The continue token expired between pages: start over in one piece.
        if (continueToken && describeFailure(error).code === 410) {
          items.length = 0;
          continueToken = undefined;
          pageSize = 0;
          continue;
        }
        throw error;
      }
      // Items of a list carry no kind or apiVersion of their own; watch events do.
      const kind = page.kind?.replace(/List$/, '');
      for (const item of page.items ?? []) items.push({ apiVersion: page.apiVersion, kind, ...item });
      continueToken = page.metadata?.continue || undefined;
      if (!continueToken) return { items, resourceVersion: page.metadata?.resourceVersion ?? '' };
    }
  }

  /**
   * A GET with the kubeconfig's credentials that returns the JSON as served: the
   * generated clients turn timestamps into Dates for core kinds, which would make listed
   * objects differ from watched ones.
   */
  async #getJson(path: string): Promise<unknown> {
    const cluster = this.#config.getCurrentCluster();
    if (!cluster) throw new Error('The kubeconfig has no current cluster');
    const abort = new AbortController();
    this.#listAbort = abort;
    const timeout = AbortSignal.timeout(this.#listTimeoutMs);
    const signal = AbortSignal.any([abort.signal, timeout]);
    const options: RequestOptions = { method: 'GET', headers: { Accept: 'application/json' }, signal };
    await this.#config.applyToHTTPSOptions(options);
    const url = new URL(cluster.server + path);
    const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
    try {
      return await new Promise((resolve, reject) => {
        const fail = (error: Error) => {
          if (!timeout.aborted) reject(error);
          else reject(Object.assign(new Error(`No answer within ${this.#listTimeoutMs} ms`), { code: 'ETIMEDOUT' }));
        };
        const req = send(url, options, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', fail);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let body: unknown;
            try {
              body = JSON.parse(text);
            } catch {
              body = text;
            }
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) resolve(body);
            else reject(new ApiException(status, `GET ${url.pathname} failed`, body, {}));
          });
        });
        req.on('error', fail);
        req.end();
      });
    } finally {
      if (this.#listAbort === abort) this.#listAbort = undefined;
    }
  }

  #emit(event: keyof InformerHandlers<T>, call: (handlers: InformerHandlers<T>) => void): void {
    for (const handlers of this.#handlers) this.#call(event, () => call(handlers));
  }

  #call(event: string, call: () => void): void {
    try {
      call();
    } catch (error) {
      // One failing handler must neither starve the others nor break the watch.
      this.#log.error({ event, error: error instanceof Error ? error.message : String(error) }, 'A handler threw');
    }
  }
}

interface ObjectList<T> {
  apiVersion?: string;
  kind?: string;
  metadata?: { resourceVersion?: string; continue?: string };
  items?: T[];
}

function keyOf(object: KubernetesObject): string {
  return `${object.metadata?.namespace ?? ''}/${object.metadata?.name ?? ''}`;
}
