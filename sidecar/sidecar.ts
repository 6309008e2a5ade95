/**
 * A sidecar, assembled: budgets, admission, the proxy and the admin port, started
 * together and drained together. main.ts runs one per process; tests run them in-process.
 * In Kubernetes mode the budgets and their grants come from the lease sync.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { StreamBudget } from '../crds/api/index.js';
import { createAdmin } from './admin.js';
import { Admission } from './admission.js';
import { type EnforcedBudget, enforce, standaloneGrant } from './budgets.js';
import type { SidecarConfig } from './config.js';
import type { LeaseSync } from './lease-sync.js';
import { SidecarMetrics } from './metrics.js';
import { StreamProxy } from './proxy.js';

export interface Sidecar {
  config: SidecarConfig;
  /** The budgets enforced now (in Kubernetes mode they come and go). */
  readonly budgets: EnforcedBudget[];
  /** The lease sync, in Kubernetes mode. */
  leaseSync: LeaseSync | undefined;
  admission: Admission;
  metrics: SidecarMetrics;
  proxy: StreamProxy;
  admin: FastifyInstance;
  /** Where the proxy and the admin port listen (ports resolved when 0 was asked for). */
  proxyPort: number;
  adminPort: number;
  /** True until a drain starts (and, in Kubernetes mode, only once budgets, leases and the pod were listed). */
  readonly ready: boolean;
  /** Stops admitting, lets open streams run for the grace period, ends the rest, closes the ports. */
  shutdown(): Promise<void>;
}

export interface SidecarOptions {
  /** Kubernetes mode: the API client configuration; KubeConfig.loadFromDefault() when left out. */
  kubeConfig?: KubeConfig;
}

/**
 * Starts a sidecar: standalone, enforcing `manifests` alone; or, in Kubernetes mode
 * (config.pod set), enforcing the grants of the pod's StreamLeases (`manifests` unused).
 */
export async function startSidecar(
  config: SidecarConfig,
  manifests: StreamBudget[],
  log: Logger,
  options: SidecarOptions = {},
): Promise<Sidecar> {
  const metricsHolder: { metrics?: SidecarMetrics } = {};
  const admission = new Admission(undefined, { doubleRelease: () => metricsHolder.metrics?.doubleReleases.inc() });
  const standalone = config.pod ? [] : enforce(manifests, standaloneGrant, performance.now());
  let leaseSync: LeaseSync | undefined;
  const budgets = () => leaseSync?.budgets() ?? standalone;
  const metrics = new SidecarMetrics(budgets, () => admission.queued);
  metricsHolder.metrics = metrics;
  if (config.pod) {
    // Loaded only in Kubernetes mode: the API client is about half of a standalone sidecar's memory.
    const [{ KubeConfig }, { LeaseSync }] = await Promise.all([
      import('@kubernetes/client-node'),
      import('./lease-sync.js'),
    ]);
    let kubeConfig = options.kubeConfig;
    if (!kubeConfig) {
      kubeConfig = new KubeConfig();
      kubeConfig.loadFromDefault();
    }
    leaseSync = new LeaseSync({ pod: config.pod, kubeConfig, admission, metrics, log });
  }
  const proxy = new StreamProxy({ config, budgets, admission, metrics, log });
  metrics.relayedBytes = () => proxy.relayedBytes();
  let draining = false;
  const ready = () => !draining && (leaseSync?.synced ?? true);
  const admin = createAdmin({ metrics, ready, streams: () => proxy.streams() });
  const proxyPort = await proxy.listen(config.listen.host, config.listen.port);
  try {
    await admin.listen({ host: config.adminListen.host, port: config.adminListen.port });
  } catch (error) {
    await proxy.close();
    throw error;
  }
  leaseSync?.start();
  const adminPort = (admin.server.address() as { port: number }).port;
  let stopped: Promise<void> | undefined;
  return {
    config,
    get budgets() {
      return budgets();
    },
    leaseSync,
    admission,
    metrics,
    proxy,
    admin,
    proxyPort,
    adminPort,
    get ready() {
      return ready();
    },
    shutdown() {
      stopped ??= (async () => {
        draining = true;
        log.info({ open: proxy.openStreams, graceSeconds: config.shutdownGraceSeconds }, 'Draining');
        proxy.drain();
        await proxy.whenIdle(config.shutdownGraceSeconds * 1000);
        await proxy.endAll('shutdown', config.closeTimeoutMs);
        // The last word to the operator: the usage the sidecar leaves behind.
        await leaseSync?.stop();
        await Promise.all([proxy.close(), admin.close()]);
        log.info({}, 'Stopped sidecar');
      })();
      return stopped;
    },
  };
}
