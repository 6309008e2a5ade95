/**
 * A fleet on a real control plane without a kubelet: Pod objects in the API, one
 * sluice-sidecar process per pod (given its pod's name and UID and a token of the
 * ServiceAccount sidecar/rbac.yaml ships), operator processes under operator/rbac.yaml,
 * and the upstream emulator in observing mode as the referee. The operator's end-to-end
 * tests and the demo both run on it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import {
  acknowledged,
  type StreamBudget,
  type StreamLease,
  streamBudgetResource,
  streamLeaseResource,
} from '../../crds/api/index.js';
import { applyRbac, serviceAccountKubeconfig, serviceAccountOf, shippedRbac } from '../cluster/service-accounts.js';
import type { LedgerEntry } from '../emulator/ledger.js';
import { Emulator, type ProjectStats } from '../emulator/server.js';
import { loggedLine, type Script, startScript } from '../support/script.js';
import { HandshakeRefused, type OpenedStream, openStream } from '../support/stream-client.js';
import { waitFor } from '../support/wait.js';

export const projectKey = 'fleet-key';
export const fluxPath = '/v2/listen?model=flux-general-en&encoding=linear16&sample_rate=16000';
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export interface FleetOptions {
  admin: KubeConfig;
  namespace: string;
  budgetName?: string;
  limit: number;
  leaseDurationSeconds?: number;
  releaseDelaySeconds?: number;
  queueTimeoutMs?: number;
  minPerPod?: number;
  strategy?: 'Demand' | 'Equal';
  labels?: Record<string, string>;
  /** A new-session budget: the budget declares it, and the referee models the provider's limit with it. */
  newSessions?: NonNullable<StreamBudget['spec']['newSessions']>;
  /**
   * The referee enforces the provider's limits instead of only counting: past the
   * new-session limit it refuses the handshake with 429, or closes with 1008.
   */
  refuseOverRateWith?: 'handshake' | 'close';
  /** Operator settings passed as environment variables. */
  operatorEnv?: Record<string, string>;
}

export interface FleetPod {
  name: string;
  uid: string;
  sidecar?: RunningSidecar;
}

export interface RunningSidecar {
  script: Script;
  url: string;
  admin: string;
}

export interface RunningOperator {
  identity: string;
  script: Script;
  admin: string;
}

/** One attempt to open a stream: the stream, or the status it was refused with. */
export type Attempt = { stream: OpenedStream } | { status: number; reason: string | undefined };

export class LocalFleet {
  readonly options: Required<Omit<FleetOptions, 'operatorEnv' | 'newSessions' | 'refuseOverRateWith'>> &
    Pick<FleetOptions, 'newSessions' | 'refuseOverRateWith'> & { operatorEnv: Record<string, string> };
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;
  readonly pods = new Map<string, FleetPod>();
  readonly operators: RunningOperator[] = [];
  readonly #dir = mkdtempSync(join(tmpdir(), 'sluice-fleet-'));
  #emulator: Emulator | undefined;
  #sidecarAccount = '';
  #sidecarKubeconfig = '';
  #operatorKubeconfig = '';
  #operatorCount = 0;
  #closers: (() => Promise<unknown> | unknown)[] = [];

  private constructor(options: FleetOptions) {
    this.options = {
      budgetName: 'flux',
      leaseDurationSeconds: 3,
      releaseDelaySeconds: 2,
      queueTimeoutMs: 0,
      minPerPod: 1,
      strategy: 'Demand',
      labels: { app: 'voicebot' },
      operatorEnv: {},
      ...options,
    };
    this.core = options.admin.makeApiClient(CoreV1Api);
    this.custom = options.admin.makeApiClient(CustomObjectsApi);
  }

  /** Sets up the namespace's RBAC, the referee and the budget; no pods or operator yet. */
  static async create(options: FleetOptions): Promise<LocalFleet> {
    const fleet = new LocalFleet(options);
    try {
      await fleet.#setUp();
    } catch (error) {
      await fleet.stop();
      throw error;
    }
    return fleet;
  }

  get namespace(): string {
    return this.options.namespace;
  }

  get emulator(): Emulator {
    return this.#emulator as Emulator;
  }

  async #setUp(): Promise<void> {
    const { namespace, admin } = this.options;
    // The sidecars and the operator: exactly the ServiceAccounts, roles and bindings the
    // project ships, applied to this namespace as the README says.
    const sidecarRbac = shippedRbac('sidecar/rbac.yaml', namespace);
    const operatorRbac = shippedRbac('operator/rbac.yaml', namespace);
    this.#closers.push(await applyRbac(admin, [...sidecarRbac, ...operatorRbac]));
    this.#sidecarAccount = serviceAccountOf(sidecarRbac);
    this.#sidecarKubeconfig = await this.#tokenKubeconfig(this.#sidecarAccount);
    this.#operatorKubeconfig = await this.#tokenKubeconfig(serviceAccountOf(operatorRbac));

    // The referee counts every stream the way the provider does, and admits them all.
    this.#emulator = await Emulator.start({
      projects: [
        {
          id: 'fleet',
          keys: [projectKey],
          maxConcurrentStreams: this.options.limit,
          enforce: this.options.refuseOverRateWith !== undefined,
          releaseDelaySeconds: this.options.releaseDelaySeconds,
          ...(this.options.newSessions && {
            newSessions: {
              ...this.options.newSessions,
              ...(this.options.refuseOverRateWith && { rejectWith: this.options.refuseOverRateWith }),
            },
          }),
        },
      ],
      flux: { idleTimeoutSeconds: 3600 },
    });
    this.#closers.push(() => this.#emulator?.close());
    await this.custom.createNamespacedCustomObject({
      ...streamBudgetResource,
      namespace,
      body: this.budgetManifest(),
    });
  }

  /** The budget as this fleet declares it. */
  budgetManifest(): StreamBudget {
    const o = this.options;
    return {
      apiVersion: 'sluice.dev/v1alpha1',
      kind: 'StreamBudget',
      metadata: { name: o.budgetName, namespace: o.namespace },
      spec: {
        provider: 'deepgram',
        projectId: o.namespace,
        upstream: this.emulator.url,
        match: { paths: ['/v2/listen'] },
        podSelector: { matchLabels: o.labels },
        maxConcurrentStreams: o.limit,
        ...(o.newSessions && { newSessions: o.newSessions }),
        allocation: { strategy: o.strategy, minPerPod: o.minPerPod, leaseDurationSeconds: o.leaseDurationSeconds },
        admission: { queueTimeoutMs: o.queueTimeoutMs, maxQueueLength: 100 },
        reaping: {
          idleTimeoutSeconds: 3600,
          pingIntervalSeconds: 15,
          maxStreamSeconds: 14_400,
          upstreamReleaseDelaySeconds: o.releaseDelaySeconds,
        },
      },
    };
  }

  async #tokenKubeconfig(serviceAccount: string): Promise<string> {
    const path = join(this.#dir, `${serviceAccount}.kubeconfig`);
    const yaml = await serviceAccountKubeconfig(this.options.admin, this.namespace, serviceAccount);
    writeFileSync(path, yaml, { mode: 0o600 });
    return path;
  }

  /** Creates a Pod object (it stays Pending: there is no kubelet) and starts its sidecar. */
  async addPod(name: string, labels: Record<string, string> = this.options.labels): Promise<FleetPod> {
    const created = await this.core.createNamespacedPod({
      namespace: this.namespace,
      body: {
        metadata: { name, labels },
        spec: {
          serviceAccountName: this.#sidecarAccount,
          containers: [{ name: 'app', image: 'registry.invalid/app:1' }],
        },
      },
    });
    const pod: FleetPod = { name, uid: created.metadata?.uid as string };
    this.pods.set(name, pod);
    pod.sidecar = await this.startSidecar(pod);
    return pod;
  }

  /** Starts (or restarts) a pod's sidecar process and waits until it listens. */
  async startSidecar(pod: FleetPod): Promise<RunningSidecar> {
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.SLUICE_BUDGET_FILE;
    const script = startScript('sidecar/main.ts', [], {
      ...env,
      KUBECONFIG: this.#sidecarKubeconfig,
      POD_NAME: pod.name,
      POD_NAMESPACE: this.namespace,
      POD_UID: pod.uid,
      SLUICE_LISTEN: '127.0.0.1:0',
      SLUICE_ADMIN_LISTEN: '127.0.0.1:0',
      SLUICE_SHUTDOWN_GRACE_SECONDS: '0',
      SLUICE_CLOSE_TIMEOUT_MS: '1000',
      SLUICE_API_KEY_FILE: this.#keyFile(),
    });
    this.#closers.push(() => script.stop());
    const { proxy, admin } = await loggedLine<{ proxy: string; admin: string }>(script, 'Started sidecar');
    const sidecar = { script, url: `ws://${proxy}`, admin: `http://${admin}` };
    pod.sidecar = sidecar;
    return sidecar;
  }

  #keyFile(): string {
    const path = join(this.#dir, 'api-key');
    writeFileSync(path, projectKey, { mode: 0o600 });
    return path;
  }

  /** Starts an operator replica and waits until it serves its admin port. */
  async startOperator(env: Record<string, string> = {}): Promise<RunningOperator> {
    const identity = `operator-${this.#operatorCount++}`;
    const script = startScript('operator/main.ts', [], {
      ...process.env,
      KUBECONFIG: this.#operatorKubeconfig,
      SLUICE_OPERATOR_ADMIN_LISTEN: '127.0.0.1:0',
      SLUICE_LEADER_ELECTION_NAMESPACE: this.namespace,
      SLUICE_OPERATOR_IDENTITY: identity,
      SLUICE_LEADER_ELECTION_LEASE_SECONDS: '3',
      SLUICE_LEADER_ELECTION_RENEW_DEADLINE_SECONDS: '2',
      SLUICE_LEADER_ELECTION_RETRY_PERIOD_SECONDS: '0.5',
      SLUICE_DEMAND_HALF_LIFE_SECONDS: '2',
      SLUICE_STALE_GONE_HOLD_SECONDS: '5',
      ...this.options.operatorEnv,
      ...env,
    });
    this.#closers.push(() => script.stop());
    const { adminPort } = await loggedLine<{ adminPort: number }>(script, 'Started operator');
    const operator = { identity, script, admin: `http://127.0.0.1:${adminPort}` };
    this.operators.push(operator);
    return operator;
  }

  /**
   * Opens `count` streams through a pod's sidecar; refusals are returned, not thrown. Each
   * stream is tagged with the pod's name, so the referee's ledger tells whose it is.
   */
  async open(pod: string, count: number): Promise<Attempt[]> {
    const sidecar = this.pods.get(pod)?.sidecar;
    if (!sidecar) throw new Error(`No sidecar runs for ${pod}`);
    const attempts: Attempt[] = [];
    for (let i = 0; i < count; i++) attempts.push(await attempt(sidecar.url, pod));
    return attempts;
  }

  async leases(): Promise<StreamLease[]> {
    const list = (await this.custom.listNamespacedCustomObject({
      ...streamLeaseResource,
      namespace: this.namespace,
    })) as { items: StreamLease[] };
    return list.items;
  }

  /** Waits until the fleet holds exactly `count` leases, each acknowledged by its sidecar. */
  acknowledgedLeases(count: number): Promise<StreamLease[]> {
    return waitFor(`${count} acknowledged leases`, async () => {
      const leases = await this.leases();
      return leases.length === count && leases.every(acknowledged) ? leases : undefined;
    });
  }

  /** The lease of a pod, if it has one. */
  async leaseOf(pod: string): Promise<StreamLease | undefined> {
    return (await this.leases()).find((l) => l.spec.podName === pod && l.spec.podUID === this.pods.get(pod)?.uid);
  }

  async budget(): Promise<StreamBudget> {
    return (await this.custom.getNamespacedCustomObject({
      ...streamBudgetResource,
      namespace: this.namespace,
      name: this.options.budgetName,
    })) as StreamBudget;
  }

  async patchBudgetSpec(spec: Record<string, unknown>): Promise<void> {
    await this.custom.patchNamespacedCustomObject(
      { ...streamBudgetResource, namespace: this.namespace, name: this.options.budgetName, body: { spec } },
      mergePatch,
    );
  }

  /** The referee's book: every acceptance (tagged with its pod) and every end, on its own clock. */
  refereeLedger(): LedgerEntry[] {
    return this.emulator.ledger('fleet');
  }

  /** The referee's count: the exact peak and how often the fleet went over. */
  referee(): {
    inUse: number;
    peak: number;
    overLimitMoments: number;
    limit: number;
    accepted: number;
    sessionRateExceeded: number;
    sessionLimitPerMinute: number | null;
    rejected: ProjectStats['rejected'];
  } {
    const project = this.emulator.stats().projects.fleet;
    if (!project) throw new Error('The emulator has no fleet project');
    return {
      inUse: project.inUse,
      peak: project.peak,
      overLimitMoments: project.overLimitMoments,
      limit: project.limit,
      accepted: project.accepted,
      sessionRateExceeded: project.sessionRateExceeded,
      sessionLimitPerMinute: project.sessionLimitPerMinute,
      rejected: project.rejected,
    };
  }

  /** Stops every process this fleet started and removes its files; the namespace goes with the test. */
  async stop(): Promise<void> {
    for (const close of this.#closers.reverse()) await close();
    this.#closers = [];
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

/** Tries one handshake through a sidecar; a `tag` reaches the upstream as the stream's tag. */
export async function attempt(sidecarUrl: string, tag?: string): Promise<Attempt> {
  const target = tag === undefined ? fluxPath : `${fluxPath}&tag=${encodeURIComponent(tag)}`;
  try {
    return { stream: await openStream(`${sidecarUrl}${target}`) };
  } catch (error) {
    if (!(error instanceof HandshakeRefused)) throw error;
    const reason = error.refusal.headers['x-sluice-reason'];
    return { status: error.refusal.status, reason: typeof reason === 'string' ? reason : undefined };
  }
}

/** The streams among attempts. */
export function opened(attempts: readonly Attempt[]): OpenedStream[] {
  return attempts.flatMap((a) => ('stream' in a ? [a.stream] : []));
}
