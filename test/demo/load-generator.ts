/**
 * The demo's load: for each pod a crowd of callers who each want one stream through
 * the pod's sidecar. Callers arrive spread out when demand rises, retry a second or so
 * after a refusal, hang up when demand falls, and calls end now and then on their own
 * (the next caller takes the place at once). Streams are real WebSockets and stay silent: the
 * fleet's idle timeouts are long.
 */
import { attempt } from '../fleet/local-fleet.js';
import type { OpenedStream } from '../support/stream-client.js';

export interface LoadGeneratorOptions {
  /** How long a refused caller waits before trying again, on average. */
  retryMs?: number;
  /** New callers arrive spread over this long after demand rises. */
  arrivalSpreadMs?: number;
  /** Average length of a call; 0 for calls that last until demand falls. */
  meanStreamSeconds?: number;
  /** Handshakes in flight at once per pod. */
  maxOpeningPerPod?: number;
  tickMs?: number;
  random?: () => number;
}

/** What the generator did on one pod. */
export interface PodLoadCounts {
  name: string;
  demand: number;
  /** Streams open now. */
  open: number;
  /** Handshakes in flight (possibly waiting in the sidecar's queue). */
  opening: number;
  /** Callers waiting to try (again). */
  waiting: number;
  admitted: number;
  /** Handshakes refused with HTTP 429. */
  refused: number;
  /** Handshakes that failed otherwise (another status, a network error). */
  failed: number;
  /** Streams that ended without the generator closing them. */
  dropped: number;
}

class PodLoad {
  demand = 0;
  readonly streams = new Set<OpenedStream>();
  opening = 0;
  /** When each waiting caller tries next. */
  waiting: number[] = [];
  admitted = 0;
  refused = 0;
  failed = 0;
  dropped = 0;

  constructor(
    readonly name: string,
    readonly url: string,
  ) {}
}

export class LoadGenerator {
  readonly #pods: PodLoad[];
  readonly #options: Required<LoadGeneratorOptions>;
  readonly #hungUp = new WeakSet<OpenedStream>();
  readonly #closing = new Set<Promise<unknown>>();
  readonly #inFlight = new Set<Promise<unknown>>();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(pods: readonly { name: string; url: string }[], options: LoadGeneratorOptions = {}) {
    this.#pods = pods.map((p) => new PodLoad(p.name, p.url));
    this.#options = {
      retryMs: 1000,
      arrivalSpreadMs: 2000,
      meanStreamSeconds: 20,
      maxOpeningPerPod: 32,
      tickMs: 100,
      random: Math.random,
      ...options,
    };
  }

  /** Streams wanted per pod, by index; takes effect at the next tick. */
  setDemand(demand: readonly number[]): void {
    this.#pods.forEach((pod, i) => {
      pod.demand = demand[i] ?? 0;
    });
  }

  start(): void {
    this.#timer ??= setInterval(() => this.#tick(), this.#options.tickMs);
  }

  counts(): PodLoadCounts[] {
    return this.#pods.map((p) => ({
      name: p.name,
      demand: p.demand,
      open: p.streams.size,
      opening: p.opening,
      waiting: p.waiting.length,
      admitted: p.admitted,
      refused: p.refused,
      failed: p.failed,
      dropped: p.dropped,
    }));
  }

  /** Stops calling, lets handshakes in flight finish, and closes every stream (cleanly, or cut after `graceMs`). */
  async stop(graceMs = 3000): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await Promise.all(this.#inFlight);
    const open = this.#pods.flatMap((pod) => [...pod.streams].map((stream) => ({ pod, stream })));
    for (const { pod, stream } of open) this.#hangUp(pod, stream);
    const deadline = new Promise((resolve) => setTimeout(resolve, graceMs).unref());
    await Promise.race([Promise.all(this.#closing), deadline]);
    for (const { stream } of open) stream.ws.terminate();
  }

  #tick(): void {
    const now = Date.now();
    const { random, tickMs, meanStreamSeconds, arrivalSpreadMs, maxOpeningPerPod } = this.#options;
    for (const pod of this.#pods) {
      if (meanStreamSeconds > 0) {
        const endChance = tickMs / (meanStreamSeconds * 1000);
        for (const stream of pod.streams) {
          if (random() >= endChance) continue;
          // The call is over; the next caller in line takes its place at once.
          this.#hangUp(pod, stream);
          pod.waiting.push(now);
        }
      }
      const wanted = pod.streams.size + pod.opening + pod.waiting.length;
      if (wanted > pod.demand) {
        pod.waiting.sort((a, b) => b - a).splice(0, wanted - pod.demand);
        for (const stream of [...pod.streams].slice(0, Math.max(0, pod.streams.size - pod.demand))) {
          this.#hangUp(pod, stream);
        }
      } else {
        for (let i = wanted; i < pod.demand; i++) pod.waiting.push(now + random() * arrivalSpreadMs);
      }
      pod.waiting.sort((a, b) => a - b);
      while (pod.opening < maxOpeningPerPod && pod.waiting.length > 0 && (pod.waiting[0] as number) <= now) {
        pod.waiting.shift();
        this.#call(pod);
      }
    }
  }

  #call(pod: PodLoad): void {
    pod.opening += 1;
    const call = attempt(pod.url)
      .then(
        (result) => {
          pod.opening -= 1;
          if ('stream' in result) {
            pod.admitted += 1;
            this.#admitted(pod, result.stream);
            return;
          }
          if (result.status === 429) pod.refused += 1;
          else pod.failed += 1;
          this.#retryLater(pod);
        },
        () => {
          pod.opening -= 1;
          pod.failed += 1;
          this.#retryLater(pod);
        },
      )
      .finally(() => this.#inFlight.delete(call));
    this.#inFlight.add(call);
  }

  #admitted(pod: PodLoad, stream: OpenedStream): void {
    if (this.#stopped || pod.streams.size >= pod.demand) {
      // Demand fell while the caller waited: it hangs up at once.
      this.#hangUp(pod, stream);
      return;
    }
    pod.streams.add(stream);
    void stream.closed.then(() => {
      pod.streams.delete(stream);
      if (this.#hungUp.has(stream)) return;
      pod.dropped += 1;
      this.#retryLater(pod);
    });
  }

  /** A refused or cut-off caller tries again later, if it is still wanted. */
  #retryLater(pod: PodLoad): void {
    if (this.#stopped || pod.streams.size + pod.opening + pod.waiting.length >= pod.demand) return;
    pod.waiting.push(Date.now() + this.#options.retryMs * (0.5 + this.#options.random()));
  }

  #hangUp(pod: PodLoad, stream: OpenedStream): void {
    pod.streams.delete(stream);
    if (this.#hungUp.has(stream)) return;
    this.#hungUp.add(stream);
    stream.ws.close(1000);
    const closed = stream.closed.finally(() => this.#closing.delete(closed));
    this.#closing.add(closed);
  }
}
