/**
 * Leader election on a coordination.k8s.io/v1 Lease, by client-go's rules: a held lease
 * is taken over only once it has stood unchanged for its duration on our own monotonic
 * clock (the holder's timestamps are never trusted), every write carries the
 * resourceVersion it read, and a leader that cannot renew within its deadline steps down.
 */
import { ApiException, type CoordinationV1Api, type V1Lease, V1MicroTime } from '@kubernetes/client-node';
import { type Logger, pino } from 'pino';
import { type Clock, systemClock } from '../../crds/api/clock.js';
import { describeFailure as failureFields } from '../../crds/kube/request-failure.js';
import { requestOptions } from '../../crds/kube/request-options.js';

/** The calls the elector makes; a CoordinationV1Api, or a test's wrapper of one. */
export type LeaseApi = Pick<
  CoordinationV1Api,
  'readNamespacedLease' | 'createNamespacedLease' | 'replaceNamespacedLease'
>;

export interface LeaderElectionOptions {
  leaseName: string;
  namespace: string;
  /** Unique per process, e.g. the pod name with a random suffix. */
  identity: string;
  /** How long others wait, after they last saw the lease change, before they take it over. */
  leaseDurationMs?: number;
  /** A leader that has not renewed for this long steps down. Shorter than the lease duration. */
  renewDeadlineMs?: number;
  /** The pause between two attempts to acquire or renew. Shorter than the renew deadline. */
  retryPeriodMs?: number;
  onStartedLeading?: () => void;
  /** May return a promise: `stop()` waits for it before it releases the lease. */
  onStoppedLeading?: () => unknown;
  /** Told the holder's identity whenever a different one is seen holding the lease, ours included. */
  onNewLeader?: (identity: string) => void;
  clock?: Clock;
  log?: Logger;
}

export type LeaderElectionErrorCode = 'SLUICE_E_LEADER_ELECTION_OPTIONS' | 'SLUICE_E_LEADER_ELECTION_STOPPED';

export class LeaderElectionError extends Error {
  constructor(
    readonly code: LeaderElectionErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'LeaderElectionError';
  }
}

interface Observation {
  /** The lease's record as last seen; any change restarts the expiry. */
  record: string;
  /** When we saw the record change, on our own clock. */
  at: number;
  holder: string;
  durationMs: number;
}

/** Competes for a Lease and tells the program when it leads and when it no longer does. */
export class LeaderElector {
  readonly identity: string;
  readonly #api: LeaseApi;
  readonly #leaseName: string;
  readonly #namespace: string;
  readonly #leaseDurationMs: number;
  readonly #renewDeadlineMs: number;
  readonly #retryPeriodMs: number;
  readonly #options: LeaderElectionOptions;
  readonly #clock: Clock;
  readonly #log: Logger;

  #lease: V1Lease | undefined;
  #observed: Observation | undefined;
  #reportedLeader: string | undefined;
  #leading = false;
  #leadingSince: number | undefined;
  #lastRenewed: number | undefined;
  #tickTimer: unknown;
  #deadlineTimer: unknown;
  #attempt: Promise<void> | undefined;
  readonly #abort = new AbortController();
  #started = false;
  #stopped = false;

  constructor(api: LeaseApi, options: LeaderElectionOptions) {
    const leaseDurationMs = options.leaseDurationMs ?? 15_000;
    const renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    const retryPeriodMs = options.retryPeriodMs ?? 2_000;
    if (!(leaseDurationMs > renewDeadlineMs && renewDeadlineMs > retryPeriodMs && retryPeriodMs > 0)) {
      throw new LeaderElectionError(
        'SLUICE_E_LEADER_ELECTION_OPTIONS',
        `Leader election needs leaseDuration > renewDeadline > retryPeriod > 0, got ${leaseDurationMs} ms, ${renewDeadlineMs} ms, ${retryPeriodMs} ms`,
      );
    }
    if (!options.identity) {
      throw new LeaderElectionError('SLUICE_E_LEADER_ELECTION_OPTIONS', 'Leader election needs an identity');
    }
    this.identity = options.identity;
    this.#api = api;
    this.#leaseName = options.leaseName;
    this.#namespace = options.namespace;
    this.#leaseDurationMs = leaseDurationMs;
    this.#renewDeadlineMs = renewDeadlineMs;
    this.#retryPeriodMs = retryPeriodMs;
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#log = (options.log ?? pino({ enabled: false })).child({
      lease: `${options.namespace}/${options.leaseName}`,
      identity: options.identity,
    });
  }

  /**
   * True while we lead: we hold the lease and renewed it within the renew deadline.
   * Checked on every call, so a late timer never leaves a stale answer.
   */
  get isLeader(): boolean {
    return (
      this.#leading && this.#lastRenewed !== undefined && this.#clock.now() - this.#lastRenewed < this.#renewDeadlineMs
    );
  }

  /** When we took the lease, on the monotonic clock; undefined while not leading. */
  get leadingSinceMs(): number | undefined {
    return this.#leading ? this.#leadingSince : undefined;
  }

  /**
   * When the last successful renewal was sent, on the monotonic clock: others can
   * have seen it no earlier, so our lease holds at least a lease duration from then.
   */
  get lastRenewedMs(): number | undefined {
    return this.#lastRenewed;
  }

  /** The holder last seen on the lease, if any. */
  get leader(): string | undefined {
    return this.#observed?.holder || undefined;
  }

  /** Starts competing for the lease; a leader that stepped down competes again. */
  start(): void {
    if (this.#stopped) throw new LeaderElectionError('SLUICE_E_LEADER_ELECTION_STOPPED', 'The elector was stopped');
    if (this.#started) return;
    this.#started = true;
    this.#attempt = this.#tick();
  }

  /**
   * Stops competing. A leader steps down (waiting for `onStoppedLeading`) and then
   * releases the lease, so another can take it at once instead of after its duration.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#clearTimer('tick');
    this.#clearTimer('deadline');
    this.#abort.abort();
    await this.#attempt?.catch(() => undefined);
    if (this.#leading) await this.#stepDown('Stopped');
    if (this.#lease?.spec?.holderIdentity === this.identity) await this.#release(this.#lease);
  }

  async #tick(): Promise<void> {
    this.#tickTimer = undefined;
    if (this.#stopped) return;
    const sentAt = this.#clock.now();
    let renewed = false;
    try {
      renewed = await this.#tryAcquireOrRenew();
    } catch (error) {
      if (this.#stopped) return;
      this.#log.warn(failureFields(error), this.#leading ? 'Renewing the lease failed' : 'Acquiring the lease failed');
    }
    if (this.#stopped) return;
    if (renewed) this.#renewed(sentAt);
    else this.#armDeadline();
    this.#tickTimer = this.#clock.setTimer(() => {
      this.#attempt = this.#tick();
    }, this.#retryPeriodMs);
  }

  /** One round of client-go's tryAcquireOrRenew: true when we hold the lease now. */
  async #tryAcquireOrRenew(): Promise<boolean> {
    const name = this.#leaseName;
    const namespace = this.#namespace;
    const now = new V1MicroTime();
    let lease: V1Lease;
    try {
      lease = await this.#api.readNamespacedLease({ name, namespace }, this.#requestOptions());
    } catch (error) {
      if (!(error instanceof ApiException && error.code === 404)) throw error;
      const created = await this.#api.createNamespacedLease(
        {
          namespace,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name, namespace },
            spec: {
              holderIdentity: this.identity,
              leaseDurationSeconds: this.#leaseDurationSeconds(),
              acquireTime: now,
              renewTime: now,
              leaseTransitions: 0,
            },
          },
        },
        this.#requestOptions(),
      );
      this.#saw(created);
      return true;
    }
    this.#saw(lease);
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const observed = this.#observed as Observation;
    if (holder && holder !== this.identity && this.#clock.now() < observed.at + observed.durationMs) return false;
    const ours = holder === this.identity;
    const transitions = spec.leaseTransitions ?? 0;
    const replaced = await this.#api.replaceNamespacedLease(
      {
        name,
        namespace,
        body: {
          ...lease,
          // The server keeps managed fields when an update leaves them out.
          metadata: { ...lease.metadata, managedFields: undefined },
          spec: {
            ...spec,
            holderIdentity: this.identity,
            leaseDurationSeconds: this.#leaseDurationSeconds(),
            renewTime: now,
            acquireTime: ours ? spec.acquireTime : now,
            leaseTransitions: ours ? transitions : transitions + 1,
          },
        },
      },
      this.#requestOptions(),
    );
    this.#saw(replaced);
    if (!ours) this.#log.info({ from: holder || undefined, transitions: transitions + 1 }, 'Took over the lease');
    return true;
  }

  /** Notes the lease as read or written; a changed record restarts its expiry on our clock. */
  #saw(lease: V1Lease): void {
    this.#lease = lease;
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    // Read back, times are the strings the server sent; never Dates to compare.
    const record = JSON.stringify([
      holder,
      spec.leaseDurationSeconds,
      String(spec.acquireTime),
      String(spec.renewTime),
      spec.leaseTransitions,
    ]);
    if (record !== this.#observed?.record) {
      this.#observed = { record, at: this.#clock.now(), holder, durationMs: (spec.leaseDurationSeconds ?? 0) * 1000 };
    }
    if (holder && holder !== this.#reportedLeader) {
      this.#reportedLeader = holder;
      this.#log.info({ holder }, 'Saw a new leader');
      this.#callback('onNewLeader', () => this.#options.onNewLeader?.(holder));
    }
  }

  #renewed(sentAt: number): void {
    // A renewal that took the whole deadline to come back is stale on arrival.
    if (this.#clock.now() - sentAt >= this.#renewDeadlineMs) {
      this.#armDeadline();
      return;
    }
    this.#lastRenewed = sentAt;
    if (!this.#leading) {
      this.#leading = true;
      this.#leadingSince = sentAt;
      this.#log.info('Started leading');
      this.#callback('onStartedLeading', () => this.#options.onStartedLeading?.());
    }
    this.#armDeadline();
  }

  /**
   * Steps down once the last renewal is a renew deadline old, or sets a timer for then.
   * A timer may fire a little early by the monotonic clock, so it checks and re-arms.
   */
  #armDeadline(): void {
    this.#clearTimer('deadline');
    if (!this.#leading || this.#lastRenewed === undefined) return;
    const dueIn = this.#lastRenewed + this.#renewDeadlineMs - this.#clock.now();
    if (dueIn <= 0) {
      void this.#stepDown('Missed the renew deadline');
      return;
    }
    this.#deadlineTimer = this.#clock.setTimer(() => {
      this.#deadlineTimer = undefined;
      this.#armDeadline();
    }, Math.ceil(dueIn));
  }

  async #stepDown(reason: string): Promise<void> {
    this.#leading = false;
    this.#leadingSince = undefined;
    this.#clearTimer('deadline');
    this.#log.warn({ reason }, 'Stopped leading');
    try {
      await this.#options.onStoppedLeading?.();
    } catch (error) {
      this.#log.error({ callback: 'onStoppedLeading', error: describe(error) }, 'A callback threw');
    }
  }

  /** Gives the lease up as client-go's ReleaseOnCancel does: no holder, a duration of one second. */
  async #release(lease: V1Lease): Promise<void> {
    const now = new V1MicroTime();
    try {
      const released = await this.#api.replaceNamespacedLease(
        {
          name: this.#leaseName,
          namespace: this.#namespace,
          body: {
            ...lease,
            metadata: { ...lease.metadata, managedFields: undefined },
            spec: {
              ...lease.spec,
              holderIdentity: undefined,
              leaseDurationSeconds: 1,
              renewTime: now,
              acquireTime: now,
            },
          },
        },
        // Not cut short by the stop that asked for it.
        this.#requestOptions(false),
      );
      this.#lease = released;
      this.#log.info('Released the lease');
    } catch (error) {
      // Somebody else holds it already, or the API is away: it expires on its own then.
      this.#log.warn(failureFields(error), 'Releasing the lease failed');
    }
  }

  #leaseDurationSeconds(): number {
    return Math.max(1, Math.ceil(this.#leaseDurationMs / 1000));
  }

  /** Bounds each request by the renew deadline, and lets `stop()` cut it short. */
  #requestOptions(cancellable = true) {
    return requestOptions({ timeoutMs: this.#renewDeadlineMs, ...(cancellable && { signal: this.#abort.signal }) });
  }

  #clearTimer(which: 'tick' | 'deadline'): void {
    const timer = which === 'tick' ? this.#tickTimer : this.#deadlineTimer;
    if (timer !== undefined) this.#clock.clearTimer(timer);
    if (which === 'tick') this.#tickTimer = undefined;
    else this.#deadlineTimer = undefined;
  }

  #callback(name: string, call: () => void): void {
    try {
      call();
    } catch (error) {
      this.#log.error({ callback: name, error: describe(error) }, 'A callback threw');
    }
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
