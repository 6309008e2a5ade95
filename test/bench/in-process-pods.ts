/**
 * Pods of a local fleet whose sidecars run inside this process: a Pod object in the API
 * and a Kubernetes-mode sidecar started with startSidecar(), under the sidecar's
 * ServiceAccount. Fifty sidecar processes would not fit on a small machine; fifty
 * sidecars in one do. A stream driver per pod keeps a wanted number of streams open.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig, type RequestContext } from '@kubernetes/client-node';
import { pino } from 'pino';
import { readSidecarConfig } from '../../sidecar/config.js';
import { type Sidecar, startSidecar } from '../../sidecar/sidecar.js';
import { attempt, type LocalFleet, projectKey } from '../fleet/local-fleet.js';
import type { OpenedStream } from '../support/stream-client.js';

export interface InProcessPod {
  name: string;
  uid: string;
  sidecar: Sidecar | undefined;
  driver: StreamDriver;
}

/**
 * A client configuration that counts the connections its API calls open (watches
 * aside): the client gives every call an agent of its own, so each may open one.
 */
class CountingKubeConfig extends KubeConfig {
  connections = 0;

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const agent = context.getAgent() as Agent | undefined;
    if (!agent) return;
    const create = agent.createConnection.bind(agent);
    agent.createConnection = (...args: Parameters<Agent['createConnection']>) => {
      this.connections += 1;
      return create(...args);
    };
  }
}

/** Warnings and errors the sidecars logged: counted by message, and which pod logged each. */
export class LogTally {
  readonly counts = new Map<string, number>();
  readonly entries: { at: number; pod: string; msg: string }[] = [];

  write(line: string): void {
    const { msg, pod } = JSON.parse(line) as { msg?: string; pod?: string };
    const key = msg ?? '?';
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    this.entries.push({ at: performance.now(), pod: pod ?? '?', msg: key });
  }

  snapshot(): Map<string, number> {
    return new Map(this.counts);
  }
}

export class InProcessPods {
  readonly fleet: LocalFleet;
  readonly pods = new Map<string, InProcessPod>();
  readonly log = new LogTally();
  /** Every sidecar started, stopped ones included: their counters still count. */
  readonly #sidecars: Sidecar[] = [];
  readonly #dir = mkdtempSync(join(tmpdir(), 'sluice-bench-pods-'));
  readonly #logger = pino({ level: 'warn', base: { component: 'sluice-sidecar' } }, this.log);
  /** One for all sidecars, made once (pods start in parallel). */
  #kubeConfig: Promise<CountingKubeConfig> | undefined;
  #connections: () => number = () => 0;
  #keyFile = '';

  constructor(fleet: LocalFleet) {
    this.fleet = fleet;
  }

  /** A client configuration with a token of the fleet's sluice-sidecar ServiceAccount. */
  #sidecarKubeConfig(): Promise<CountingKubeConfig> {
    this.#kubeConfig ??= this.#makeKubeConfig();
    return this.#kubeConfig;
  }

  async #makeKubeConfig(): Promise<CountingKubeConfig> {
    const { admin, namespace } = this.fleet.options;
    const token = await this.fleet.core.createNamespacedServiceAccountToken({
      name: 'sluice-sidecar',
      namespace,
      body: { spec: { audiences: [], expirationSeconds: 7200 } },
    });
    const cluster = admin.getCurrentCluster();
    if (!cluster) throw new Error('The admin kubeconfig names no cluster');
    const kubeConfig = new CountingKubeConfig();
    kubeConfig.loadFromOptions({
      clusters: [{ name: 'fleet', server: cluster.server, caData: cluster.caData, caFile: cluster.caFile }],
      users: [{ name: 'sluice-sidecar', token: token.status?.token }],
      contexts: [{ name: 'fleet', cluster: 'fleet', user: 'sluice-sidecar', namespace }],
      currentContext: 'fleet',
    });
    this.#keyFile = join(this.#dir, 'api-key');
    writeFileSync(this.#keyFile, projectKey, { mode: 0o600 });
    this.#connections = () => kubeConfig.connections;
    return kubeConfig;
  }

  /** Creates a Pod object (Pending for good: there is no kubelet) and starts its sidecar here. */
  async addPod(name: string, driver: DriverOptions = {}): Promise<InProcessPod> {
    const created = await this.fleet.core.createNamespacedPod({
      namespace: this.fleet.namespace,
      body: {
        metadata: { name, labels: this.fleet.options.labels },
        spec: { serviceAccountName: 'sluice-sidecar', containers: [{ name: 'app', image: 'registry.invalid/app:1' }] },
      },
    });
    const pod: InProcessPod = {
      name,
      uid: created.metadata?.uid as string,
      sidecar: undefined,
      driver: new StreamDriver(() => (pod.sidecar ? `ws://127.0.0.1:${pod.sidecar.proxyPort}` : undefined), driver),
    };
    this.pods.set(name, pod);
    await this.startSidecar(pod);
    return pod;
  }

  /** Starts (or starts again) the pod's sidecar: a restart reads its leases afresh, as after a crash. */
  async startSidecar(pod: InProcessPod): Promise<Sidecar> {
    const kubeConfig = await this.#sidecarKubeConfig();
    const config = readSidecarConfig({
      POD_NAME: pod.name,
      POD_NAMESPACE: this.fleet.namespace,
      POD_UID: pod.uid,
      SLUICE_LISTEN: '127.0.0.1:0',
      SLUICE_ADMIN_LISTEN: '127.0.0.1:0',
      SLUICE_SHUTDOWN_GRACE_SECONDS: '0',
      SLUICE_CLOSE_TIMEOUT_MS: '1000',
      SLUICE_API_KEY_FILE: this.#keyFile,
      SLUICE_LOG_LEVEL: 'warn',
    });
    const sidecar = await startSidecar(config, [], this.#logger.child({ pod: pod.name }), { kubeConfig });
    this.#sidecars.push(sidecar);
    pod.sidecar = sidecar;
    return sidecar;
  }

  /** Drains and stops the pod's sidecar (its streams end, its last usage is written). */
  async stopSidecar(pod: InProcessPod): Promise<void> {
    const sidecar = pod.sidecar;
    pod.sidecar = undefined;
    await sidecar?.shutdown();
  }

  /** Deletes the Pod object and stops its driver and sidecar, as a pod going away does. */
  async deletePod(name: string): Promise<void> {
    const pod = this.pods.get(name);
    if (!pod) return;
    this.pods.delete(name);
    pod.driver.stop();
    await this.fleet.core.deleteNamespacedPod({ name, namespace: this.fleet.namespace });
    await this.stopSidecar(pod);
  }

  /** Connections the sidecars' API calls (status writes, lists; not watches) opened so far. */
  get apiConnections(): number {
    return this.#connections();
  }

  /** A counter of every sidecar this run started, summed by one label (or in all, with no label). */
  async sidecarCounter(
    counter: 'leaseWrites' | 'rejected' | 'admitted',
    label?: 'result' | 'reason',
  ): Promise<Map<string, number>> {
    const sums = new Map<string, number>();
    for (const sidecar of this.#sidecars) {
      const { values } = await sidecar.metrics[counter].get();
      for (const { labels, value } of values) {
        const key = label ? String((labels as Record<string, string>)[label] ?? '') : 'all';
        sums.set(key, (sums.get(key) ?? 0) + value);
      }
    }
    return sums;
  }

  /** Stops every driver and sidecar and removes the files. */
  async stop(): Promise<void> {
    for (const pod of this.pods.values()) pod.driver.stop();
    await Promise.all([...this.pods.values()].map((pod) => this.stopSidecar(pod)));
    this.pods.clear();
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

export interface DriverOptions {
  /** Streams end after a random time in [min, max] ms and are replaced; undefined: they stay open. */
  lifetimeMs?: [number, number];
  /** Pause between two attempts to fill up after a refusal. */
  retryMs?: number;
}

/**
 * Keeps `target` streams open through a sidecar: opens until refused, tries again after
 * `retryMs`, replaces streams that end, and closes the surplus when the target falls.
 */
export class StreamDriver {
  readonly streams = new Set<OpenedStream>();
  refusals = 0;
  failures = 0;
  /** Changeable between phases. */
  readonly options: DriverOptions;
  readonly #url: () => string | undefined;
  #target = 0;
  #filling = false;
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(url: () => string | undefined, options: DriverOptions = {}) {
    this.#url = url;
    this.options = { ...options };
  }

  get target(): number {
    return this.#target;
  }

  get open(): number {
    return this.streams.size;
  }

  /** Wants `count` streams open from now on. */
  want(count: number): void {
    this.#target = count;
    const surplus = [...this.streams].slice(count);
    for (const stream of surplus) {
      this.streams.delete(stream);
      stream.ws.close(1000);
    }
    void this.#fill();
  }

  /** Ends every stream; the target stays, so they are replaced (with a lifetime, if one is set now). */
  replaceAll(): void {
    for (const stream of this.streams) stream.ws.close(1000);
  }

  /** Closes every stream and lets them end; the target falls to 0. */
  async closeAll(): Promise<void> {
    this.#target = 0;
    const streams = [...this.streams];
    this.streams.clear();
    for (const stream of streams) stream.ws.close(1000);
    await Promise.all(streams.map((s) => s.closed));
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    for (const stream of this.streams) stream.ws.close(1000);
    this.streams.clear();
  }

  async #fill(): Promise<void> {
    if (this.#filling || this.#stopped) return;
    this.#filling = true;
    clearTimeout(this.#timer);
    let refused = false;
    try {
      while (!this.#stopped && this.streams.size < this.#target) {
        const url = this.#url();
        if (!url) {
          refused = true;
          break;
        }
        let result: Awaited<ReturnType<typeof attempt>>;
        try {
          result = await attempt(url);
        } catch {
          // The sidecar is restarting: its port is gone for a moment.
          this.failures += 1;
          refused = true;
          break;
        }
        if (!('stream' in result)) {
          this.refusals += 1;
          refused = true;
          break;
        }
        this.#keep(result.stream);
      }
    } finally {
      this.#filling = false;
    }
    if (this.#stopped) return;
    if (refused) this.#timer = setTimeout(() => void this.#fill(), this.options.retryMs ?? 200);
    else if (this.streams.size < this.#target) void this.#fill();
  }

  #keep(stream: OpenedStream): void {
    if (this.#stopped || this.streams.size >= this.#target) {
      stream.ws.close(1000);
      return;
    }
    this.streams.add(stream);
    const lifetime = this.options.lifetimeMs;
    const timer = lifetime
      ? setTimeout(() => stream.ws.close(1000), lifetime[0] + Math.random() * (lifetime[1] - lifetime[0]))
      : undefined;
    void stream.closed.then(() => {
      clearTimeout(timer);
      if (this.streams.delete(stream)) void this.#fill();
    });
  }
}
