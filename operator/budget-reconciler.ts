/**
 * Reconciles one StreamBudget: reads its budget, leases and pods from the caches, asks
 * planBudget what to do, and does it — the grant writes with optimistic concurrency, the
 * releases, the status, the events — reporting each write's outcome back to the plan's
 * memory. It decides nothing itself. Level-triggered: every call starts from what the
 * caches show now.
 */
import {
  type ApiException,
  type CoreV1Api,
  type CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import {
  operatorManager,
  type StreamBudget,
  type StreamLease,
  selects,
  slotsHeldFinalizer,
  streamBudgetResource,
  streamLeaseResource,
} from '../crds/api/index.js';
import type { OperatorMetrics } from './metrics.js';
import {
  type GrantWrite,
  type Leadership,
  type PlannerMemory,
  type PlannerSettings,
  planBudget,
  recordStatusWritten,
  recordWrite,
} from './plan-budget.js';

export type { Leadership } from './plan-budget.js';

/** What the reconciler reads: the informers' caches. */
export interface Caches {
  budgets: { list(): StreamBudget[] };
  leases: { list(): StreamLease[] };
  pods: { list(): V1Pod[] };
}

export interface ReconcilerOptions extends PlannerSettings {
  caches: Caches;
  custom: CustomObjectsApi;
  core: CoreV1Api;
  leadership: Leadership;
  metrics: OperatorMetrics;
  log: Logger;
  now?: () => number;
  wallClock?: () => Date;
}

const { group, version, apiVersion } = streamLeaseResource;
const leasesPlural = streamLeaseResource.plural;
const budgetsPlural = streamBudgetResource.plural;
const jsonPatch = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export class BudgetReconciler {
  readonly #options: ReconcilerOptions;
  readonly #memory: PlannerMemory = new Map();
  readonly #now: () => number;
  readonly #wall: () => Date;

  constructor(options: ReconcilerOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => performance.now());
    this.#wall = options.wallClock ?? (() => new Date());
  }

  /** Forgets everything remembered (leadership lost: a later term starts from the API). */
  forget(): void {
    this.#memory.clear();
  }

  /** The budget keys (namespace/name) a pod's labels concern. */
  budgetsForPod(pod: V1Pod): string[] {
    const namespace = pod.metadata?.namespace;
    const labels = pod.metadata?.labels ?? {};
    return this.#options.caches.budgets
      .list()
      .filter((b) => b.metadata.namespace === namespace && selects(b.spec.podSelector, labels))
      .map((b) => `${namespace}/${b.metadata.name}`);
  }

  /** Reconciles `namespace/name`; returns when to come back. */
  async reconcile(key: string): Promise<{ requeueAfterMs?: number }> {
    const { caches, leadership, metrics } = this.#options;
    const [namespace, name] = key.split('/') as [string, string];
    const budgets = caches.budgets.list();
    const now = this.#now();
    const plan = planBudget(
      this.#memory,
      {
        key,
        budget: budgets.find((b) => b.metadata.namespace === namespace && b.metadata.name === name),
        leases: caches.leases.list().filter((l) => l.metadata.namespace === namespace && l.spec.budgetName === name),
        pods: caches.pods.list().filter((p) => p.metadata?.namespace === namespace),
        budgets,
        leadership,
        wallClock: this.#wall(),
      },
      this.#options,
      now,
    );
    const budget = budgets.find((b) => b.metadata.namespace === namespace && b.metadata.name === name);
    const log = this.#options.log.child({ budget: key });

    if (budget && plan.addFinalizer) await this.#addBudgetFinalizer(budget);
    for (const write of plan.writes) {
      const ok = write.kind === 'create' ? await this.#createLease(write, log) : await this.#writeGrant(write, log);
      recordWrite(this.#memory, key, write, ok, now);
    }
    for (const lease of plan.releases) await this.#release(lease);
    if (budget && plan.status) {
      await this.#writeStatus(budget, plan.status, log);
      recordStatusWritten(this.#memory, key, now);
    }
    if (plan.gauges) metrics.budget(key, plan.gauges);
    if (budget) for (const event of plan.events) await this.#event(budget, event.type, event.reason, event.message);
    if (budget && plan.removeFinalizer) await this.#removeBudgetFinalizer(budget);
    if (plan.forget) metrics.forgetBudget(key);
    return plan.requeueAfterMs === undefined ? {} : { requeueAfterMs: plan.requeueAfterMs };
  }

  async #createLease(write: Extract<GrantWrite, { kind: 'create' }>, log: Logger): Promise<boolean> {
    const { body } = write;
    try {
      await this.#options.custom.createNamespacedCustomObject({
        group,
        version,
        namespace: body.metadata.namespace as string,
        plural: leasesPlural,
        body,
        fieldManager: operatorManager,
      });
      this.#options.metrics.apiWrites.inc({ kind: 'lease_create', result: 'ok' });
      log.info({ pod: body.spec.podName, lease: write.lease, grant: write.grant }, 'Created lease');
      return true;
    } catch (error) {
      this.#options.metrics.apiWrites.inc({ kind: 'lease_create', result: resultOf(error) });
      if (statusOf(error) === 409) return false;
      throw error;
    }
  }

  /** Writes a grant only if the lease is still at the epoch it was computed from. */
  async #writeGrant(write: Extract<GrantWrite, { kind: 'grant' }>, log: Logger): Promise<boolean> {
    const { target: lease, epoch, grant } = write;
    try {
      await this.#options.custom.patchNamespacedCustomObject(
        {
          group,
          version,
          namespace: lease.metadata.namespace as string,
          plural: leasesPlural,
          name: lease.metadata.name as string,
          body: [
            { op: 'test', path: '/spec/epoch', value: epoch },
            { op: 'replace', path: '/spec/grant', value: grant },
            { op: 'replace', path: '/spec/epoch', value: epoch + 1 },
          ],
          fieldManager: operatorManager,
        },
        jsonPatch,
      );
      this.#options.metrics.apiWrites.inc({ kind: 'lease_grant', result: 'ok' });
      log.debug({ lease: lease.metadata.name, epoch: epoch + 1, grant }, 'Wrote grant');
      return true;
    } catch (error) {
      const result = resultOf(error);
      this.#options.metrics.apiWrites.inc({ kind: 'lease_grant', result });
      // A failed test (422) or a vanished lease (404): the cache will bring the truth.
      if (result === 'conflict' || statusOf(error) === 404) return false;
      throw error;
    }
  }

  /** Lets a lease go: its finalizer first (checked against the version we saw), then the object. */
  async #release(lease: StreamLease): Promise<void> {
    const namespace = lease.metadata.namespace as string;
    const name = lease.metadata.name as string;
    try {
      await this.#setFinalizer(leasesPlural, lease, false);
      if (!lease.metadata.deletionTimestamp) {
        await this.#options.custom.deleteNamespacedCustomObject({
          group,
          version,
          namespace,
          plural: leasesPlural,
          name,
        });
      }
      this.#options.metrics.apiWrites.inc({ kind: 'lease_release', result: 'ok' });
      this.#options.log.info({ lease: name, budget: `${namespace}/${lease.spec.budgetName}` }, 'Released lease');
    } catch (error) {
      this.#options.metrics.apiWrites.inc({ kind: 'lease_release', result: resultOf(error) });
      if (statusOf(error) === 404 || resultOf(error) === 'conflict') return;
      throw error;
    }
  }

  async #addBudgetFinalizer(budget: StreamBudget): Promise<void> {
    await this.#setFinalizer(budgetsPlural, budget, true);
    this.#options.metrics.apiWrites.inc({ kind: 'budget_finalizer', result: 'ok' });
  }

  async #removeBudgetFinalizer(budget: StreamBudget): Promise<void> {
    try {
      await this.#setFinalizer(budgetsPlural, budget, false);
      this.#options.metrics.apiWrites.inc({ kind: 'budget_finalizer', result: 'ok' });
    } catch (error) {
      if (statusOf(error) !== 404) throw error;
    }
  }

  /**
   * Adds or removes the slots-held finalizer with a JSON patch that tests the
   * resourceVersion we saw, so that a finalizer someone else changed meanwhile is never lost.
   */
  async #setFinalizer(plural: string, object: StreamBudget | StreamLease, present: boolean): Promise<void> {
    const finalizers = object.metadata.finalizers ?? [];
    if (finalizers.includes(slotsHeldFinalizer) === present) return;
    await this.#options.custom.patchNamespacedCustomObject(
      {
        group,
        version,
        namespace: object.metadata.namespace as string,
        plural,
        name: object.metadata.name as string,
        body: [
          { op: 'test', path: '/metadata/resourceVersion', value: object.metadata.resourceVersion },
          {
            // add, not replace: it also sets a list that is not there yet.
            op: 'add',
            path: '/metadata/finalizers',
            value: present ? [...finalizers, slotsHeldFinalizer] : finalizers.filter((f) => f !== slotsHeldFinalizer),
          },
        ],
        fieldManager: operatorManager,
      },
      jsonPatch,
    );
  }

  async #writeStatus(budget: StreamBudget, status: StreamBudget['status'], log: Logger): Promise<void> {
    try {
      await this.#options.custom.patchNamespacedCustomObjectStatus(
        {
          group,
          version,
          namespace: budget.metadata.namespace as string,
          plural: budgetsPlural,
          name: budget.metadata.name as string,
          body: { status },
          fieldManager: operatorManager,
        },
        mergePatch,
      );
      this.#options.metrics.apiWrites.inc({ kind: 'budget_status', result: 'ok' });
    } catch (error) {
      this.#options.metrics.apiWrites.inc({ kind: 'budget_status', result: resultOf(error) });
      if (statusOf(error) === 404) return;
      log.warn({ code: statusOf(error) }, 'Failed to write budget status');
      throw error;
    }
  }

  async #event(budget: StreamBudget, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const namespace = budget.metadata.namespace as string;
    const time = this.#wall();
    try {
      await this.#options.core.createNamespacedEvent({
        namespace,
        body: {
          metadata: { generateName: `${budget.metadata.name}.`, namespace },
          involvedObject: {
            apiVersion,
            kind: 'StreamBudget',
            name: budget.metadata.name as string,
            namespace,
            ...(budget.metadata.uid && { uid: budget.metadata.uid }),
          },
          type,
          reason,
          message,
          source: { component: operatorManager },
          reportingComponent: operatorManager,
          reportingInstance: process.env.POD_NAME ?? 'sluice-operator',
          firstTimestamp: time,
          lastTimestamp: time,
          count: 1,
        },
      });
      this.#options.metrics.apiWrites.inc({ kind: 'event', result: 'ok' });
    } catch (error) {
      // An event is worth a try, never a failed reconcile.
      this.#options.metrics.apiWrites.inc({ kind: 'event', result: resultOf(error) });
    }
  }
}

function statusOf(error: unknown): number | undefined {
  const code = (error as ApiException<unknown>)?.code;
  return typeof code === 'number' ? code : undefined;
}

function resultOf(error: unknown): string {
  const code = statusOf(error);
  if (code === 409 || code === 422) return 'conflict';
  if (code === 404) return 'not_found';
  return 'error';
}
