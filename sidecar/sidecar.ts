/**
 * A sidecar, assembled: budgets, admission, the proxy and the admin port, started
 * together and drained together. main.ts runs one per process; tests run them in-process.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { StreamBudget } from '../crds/api/index.js';
import { createAdmin } from './admin.js';
import { Admission } from './admission.js';
import { type EnforcedBudget, enforce, standaloneGrant } from './budgets.js';
import type { SidecarConfig } from './config.js';
import { SidecarMetrics } from './metrics.js';
import { StreamProxy } from './proxy.js';

export interface Sidecar {
  config: SidecarConfig;
  budgets: EnforcedBudget[];
  admission: Admission;
  metrics: SidecarMetrics;
  proxy: StreamProxy;
  admin: FastifyInstance;
  /** Where the proxy and the admin port listen (ports resolved when 0 was asked for). */
  proxyPort: number;
  adminPort: number;
  /** True until a drain starts. */
  readonly ready: boolean;
  /** Stops admitting, lets open streams run for the grace period, ends the rest, closes the ports. */
  shutdown(): Promise<void>;
}

/** Starts a standalone sidecar enforcing `manifests` alone. */
export async function startSidecar(config: SidecarConfig, manifests: StreamBudget[], log: Logger): Promise<Sidecar> {
  const budgets = enforce(manifests, standaloneGrant, performance.now());
  const metricsHolder: { metrics?: SidecarMetrics } = {};
  const admission = new Admission(undefined, { doubleRelease: () => metricsHolder.metrics?.doubleReleases.inc() });
  const metrics = new SidecarMetrics(
    () => budgets,
    () => admission.queued,
  );
  metricsHolder.metrics = metrics;
  const proxy = new StreamProxy({ config, budgets: () => budgets, admission, metrics, log });
  let draining = false;
  const admin = createAdmin({ metrics, ready: () => !draining, streams: () => proxy.streams() });
  const proxyPort = await proxy.listen(config.listen.host, config.listen.port);
  try {
    await admin.listen({ host: config.adminListen.host, port: config.adminListen.port });
  } catch (error) {
    await proxy.close();
    throw error;
  }
  const adminPort = (admin.server.address() as { port: number }).port;
  let stopped: Promise<void> | undefined;
  return {
    config,
    budgets,
    admission,
    metrics,
    proxy,
    admin,
    proxyPort,
    adminPort,
    get ready() {
      return !draining;
    },
    shutdown() {
      stopped ??= (async () => {
        draining = true;
        log.info({ open: proxy.openStreams, graceSeconds: config.shutdownGraceSeconds }, 'Draining');
        proxy.drain();
        await proxy.whenIdle(config.shutdownGraceSeconds * 1000);
        await proxy.endAll('shutdown', config.closeTimeoutMs);
        await Promise.all([proxy.close(), admin.close()]);
        log.info({}, 'Stopped sidecar');
      })();
      return stopped;
    },
  };
}
