/**
 * The operator, assembled: informers on StreamBudgets, StreamLeases and Pods feed a work
 * queue of budget keys; the elected leader's workers reconcile them. Every replica keeps
 * its caches warm so that a standby takes over with a full view; a leader that steps
 * down stops its workers and forgets what it remembered.
 */
import { CoordinationV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { type StreamBudget, type StreamLease, streamBudgetResource, streamLeaseResource } from '../crds/api/index.js';
import { Informer, podsResource } from '../crds/kube/informer.js';
import { PooledKubeConfig } from '../crds/kube/pooled-kube-config.js';
import { createOperatorAdmin } from './admin.js';
import { BudgetReconciler } from './budget-reconciler.js';
import type { OperatorConfig } from './config.js';
import { LeaderElector } from './kube/leader-election.js';
import { runWorkers, WorkQueue } from './kube/work-queue.js';
import { OperatorMetrics } from './metrics.js';

export interface Operator {
  readonly adminPort: number;
  readonly leading: boolean;
  stop(): Promise<void>;
}

export async function startOperator(config: OperatorConfig, given: KubeConfig, log: Logger): Promise<Operator> {
  // Every call to the API server goes over kept connections, not a new TLS handshake each.
  const kubeConfig = PooledKubeConfig.from(given);
  const namespace = config.watchNamespace;
  const informerLog = log.child({ component: 'informer' });
  const budgets = new Informer<StreamBudget>(kubeConfig, {
    resource: streamBudgetResource,
    ...(namespace && { namespace }),
    log: informerLog,
  });
  const leases = new Informer<StreamLease>(kubeConfig, {
    resource: streamLeaseResource,
    ...(namespace && { namespace }),
    log: informerLog,
  });
  const pods = new Informer<V1Pod>(kubeConfig, {
    resource: podsResource,
    ...(namespace && { namespace }),
    log: informerLog,
  });

  let queue = new WorkQueue();
  const metrics = new OperatorMetrics(() => queue.length);
  const elector = new LeaderElector(kubeConfig.makeApiClient(CoordinationV1Api), {
    leaseName: config.leaderElectionName,
    namespace: config.leaderElectionNamespace,
    identity: config.identity,
    leaseDurationMs: config.leaseDurationMs,
    renewDeadlineMs: config.renewDeadlineMs,
    retryPeriodMs: config.retryPeriodMs,
    onStartedLeading: () => lead(),
    onStoppedLeading: () => standBy(),
    onNewLeader: (identity) => log.info({ leader: identity }, 'Observed a new leader'),
    log: log.child({ component: 'leader-election' }),
  });

  const reconciler = new BudgetReconciler({
    caches: budgetsCaches(),
    custom: kubeConfig.makeApiClient(CustomObjectsApi),
    core: kubeConfig.makeApiClient(CoreV1Api),
    leadership: {
      mayRaise(graceMs) {
        const now = performance.now();
        const since = elector.leadingSinceMs;
        const renewed = elector.lastRenewedMs;
        // A new leader raises nothing for a grace period (the old one's writes may still land),
        // and no leader raises unless its last renewal is recent: it may have been deposed.
        return (
          elector.isLeader &&
          since !== undefined &&
          renewed !== undefined &&
          now - since >= graceMs &&
          now - renewed <= config.renewDeadlineMs
        );
      },
    },
    metrics,
    log,
    staleGoneHoldSeconds: config.staleGoneHoldSeconds,
    demandHalfLifeSeconds: config.demandHalfLifeSeconds,
    peakWindowSeconds: config.peakWindowSeconds,
    statusIntervalSeconds: config.statusIntervalSeconds,
  });

  function budgetsCaches() {
    return { budgets, leases, pods };
  }

  const enqueueBudget = (budget: StreamBudget) => queue.add(`${budget.metadata.namespace}/${budget.metadata.name}`);
  const enqueueLease = (lease: StreamLease) => queue.add(`${lease.metadata.namespace}/${lease.spec.budgetName}`);
  const enqueuePod = (pod: V1Pod) => {
    for (const key of reconciler.budgetsForPod(pod)) queue.add(key);
    // Leases name their pod: a pod that left a selector or went is found through them.
    for (const lease of leases.list(pod.metadata?.namespace)) {
      if (lease.spec.podName === pod.metadata?.name) enqueueLease(lease);
    }
  };
  budgets.addHandlers({ onAdd: enqueueBudget, onUpdate: (_, b) => enqueueBudget(b), onDelete: enqueueBudget });
  leases.addHandlers({ onAdd: enqueueLease, onUpdate: (_, l) => enqueueLease(l), onDelete: enqueueLease });
  pods.addHandlers({
    onAdd: enqueuePod,
    onUpdate: (old, pod) => {
      enqueuePod(old);
      enqueuePod(pod);
    },
    onDelete: enqueuePod,
  });

  let workers: Promise<void> | undefined;
  function lead(): void {
    log.info({ identity: config.identity }, 'Started leading');
    metrics.leader.set(1);
    queue = new WorkQueue();
    for (const budget of budgets.list()) enqueueBudget(budget);
    const current = queue;
    workers = runWorkers(
      current,
      config.workers,
      async (key) => {
        const end = metrics.reconcileSeconds.startTimer();
        try {
          const result = await reconciler.reconcile(key);
          metrics.reconciles.inc({ result: 'ok' });
          return result;
        } catch (error) {
          metrics.reconciles.inc({ result: 'error' });
          throw error;
        } finally {
          end();
        }
      },
      {
        onError: (key, error, requeues) =>
          log.warn(
            // An ApiException's message carries response headers and body: log its code only.
            { budget: key, code: (error as { code?: unknown }).code, name: (error as Error).name, requeues },
            'Failed to reconcile budget',
          ),
      },
    );
  }
  async function standBy(): Promise<void> {
    log.warn({ identity: config.identity }, 'Stopped leading');
    metrics.leader.set(0);
    queue.shutDown();
    await workers;
    workers = undefined;
    reconciler.forget();
  }

  budgets.start();
  leases.start();
  pods.start();
  const admin: FastifyInstance = createOperatorAdmin({
    metrics,
    ready: () => budgets.hasSynced && leases.hasSynced && pods.hasSynced,
    leading: () => elector.isLeader,
  });
  await admin.listen({ host: config.adminListen.host, port: config.adminListen.port });
  const adminPort = (admin.server.address() as { port: number }).port;
  await Promise.all([budgets.synced(), leases.synced(), pods.synced()]);
  log.info({ budgets: budgets.list().length, leases: leases.list().length }, 'Synced caches');
  // Only a replica with a full view competes: a new leader must see every lease at once.
  elector.start();

  let stopped: Promise<void> | undefined;
  return {
    adminPort,
    get leading() {
      return elector.isLeader;
    },
    stop() {
      stopped ??= (async () => {
        await elector.stop();
        queue.shutDown();
        await workers;
        await Promise.all([budgets.stop(), leases.stop(), pods.stop()]);
        await admin.close();
        kubeConfig.close();
        log.info({}, 'Stopped operator');
      })();
      return stopped;
    },
  };
}
