/**
 * Reconciles one StreamBudget: finds its pods and leases in the caches, asks the
 * allocation core which grants to write, writes them with optimistic concurrency, lets
 * leases go once their slots are surely free, and writes the budget's status — only what
 * changed. Level-triggered: every call starts from what the caches show now.
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
  budgetLabel,
  labelValue,
  leaseName,
  leaseTimings,
  operatorManager,
  podNameLabel,
  podUidLabel,
  type StreamBudget,
  type StreamLease,
  selects,
  slotHoldMs,
  slotsHeldFinalizer,
  streamBudgetResource,
  streamLeaseResource,
} from '../crds/api/index.js';
import { allocate, type Grant } from './allocate.js';
import { budgetStatus, sameStatus } from './budget-status.js';
import { type Candidate, LeaseBook, type ObservedLease } from './lease-book.js';
import type { OperatorMetrics } from './metrics.js';
import { SessionModel } from './session-model.js';

/** What the reconciler reads: the informers' caches. */
export interface Caches {
  budgets: { list(): StreamBudget[] };
  leases: { list(): StreamLease[] };
  pods: { list(): V1Pod[] };
}

/** What leadership allows now. */
export interface Leadership {
  /** Leading, renewed within the renew deadline, and for at least `graceMs`. */
  mayRaise(graceMs: number): boolean;
}

export interface ReconcilerOptions {
  caches: Caches;
  custom: CustomObjectsApi;
  core: CoreV1Api;
  leadership: Leadership;
  metrics: OperatorMetrics;
  log: Logger;
  /** Extra hold for a pod that went while stale: it may still be streaming on a cut-off node. */
  staleGoneHoldSeconds: number | undefined;
  demandHalfLifeSeconds: number;
  peakWindowSeconds: number;
  /** Usage figures in a budget's status are written at most this often; conditions at once. */
  statusIntervalSeconds: number;
  now?: () => number;
  wallClock?: () => Date;
}

interface BudgetMemory {
  book: LeaseBook;
  sessions?: SessionModel;
  sessionsSpec?: string;
  peaks: { at: number; value: number }[];
  rejections: { at: number; count: number }[];
  lastRejectedTotals: Map<string, number>;
  stale: Set<string>;
  overCommitted: boolean;
  rejecting: boolean;
  /** When this memory started: a leader that just started raises no session rate for a minute. */
  since: number;
  statusWrittenAt: number;
}

const { group, version, apiVersion } = streamLeaseResource;
const leasesPlural = streamLeaseResource.plural;
const budgetsPlural = streamBudgetResource.plural;
const jsonPatch = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export class BudgetReconciler {
  readonly #o: ReconcilerOptions;
  readonly #memory = new Map<string, BudgetMemory>();
  readonly #now: () => number;
  readonly #wall: () => Date;

  constructor(options: ReconcilerOptions) {
    this.#o = options;
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
    return this.#o.caches.budgets
      .list()
      .filter((b) => b.metadata.namespace === namespace && selects(b.spec.podSelector, labels))
      .map((b) => `${namespace}/${b.metadata.name}`);
  }

  /** Reconciles `namespace/name`; returns when to come back. */
  async reconcile(key: string): Promise<{ requeueAfterMs?: number }> {
    const [namespace, name] = key.split('/') as [string, string];
    const budget = this.#o.caches.budgets
      .list()
      .find((b) => b.metadata.namespace === namespace && b.metadata.name === name);
    const leases = this.#o.caches.leases
      .list()
      .filter((l) => l.metadata.namespace === namespace && l.spec.budgetName === name);
    if (!budget) {
      // The budget is gone without us (its finalizer was removed by hand): let its leases go.
      for (const lease of leases) await this.#release(lease);
      this.#forgetBudget(key);
      return {};
    }
    const log = this.#o.log.child({ budget: key });
    const now = this.#now();
    const timings = leaseTimings(budget);
    const releaseDelayMs = slotHoldMs(budget);
    const memory = this.#memoryFor(key, budget, timings.staleAfterMs, releaseDelayMs, now);
    const deleting = budget.metadata.deletionTimestamp !== undefined;

    if (!deleting && !budget.metadata.finalizers?.includes(slotsHeldFinalizer)) {
      await this.#addBudgetFinalizer(budget);
    }

    // Who shares the budget, and where each stands.
    const pods = this.#o.caches.pods.list().filter((p) => p.metadata?.namespace === namespace);
    const podsByName = new Map(pods.map((p) => [p.metadata?.name as string, p]));
    const candidates: Candidate[] = [];
    const leaseByName = new Map<string, StreamLease>();
    const podOfCandidate = new Map<string, V1Pod>();
    for (const lease of leases) {
      const pod = podsByName.get(lease.spec.podName);
      const alive = pod && pod.metadata?.uid === lease.spec.podUID && !terminal(pod);
      const phase = !alive
        ? 'gone'
        : deleting || pod.metadata?.deletionTimestamp || !selects(budget.spec.podSelector, pod.metadata?.labels ?? {})
          ? 'draining'
          : 'active';
      const leaseKey = lease.metadata.name as string;
      leaseByName.set(leaseKey, lease);
      if (pod && alive) podOfCandidate.set(leaseKey, pod);
      candidates.push({ name: leaseKey, phase, lease: observe(lease) });
    }
    if (!deleting) {
      for (const pod of pods) {
        const uid = pod.metadata?.uid;
        if (!uid || pod.metadata?.deletionTimestamp || terminal(pod)) continue;
        if (!selects(budget.spec.podSelector, pod.metadata?.labels ?? {})) continue;
        const leaseKey = leaseName(name, pod.metadata?.name as string, uid);
        if (leaseByName.has(leaseKey)) continue;
        podOfCandidate.set(leaseKey, pod);
        candidates.push({ name: leaseKey, phase: 'active' });
      }
    }

    const members = memory.book.members(candidates, now);
    const statuses = leases.map((l) => l.status ?? {});
    const startsLastMinute = statuses.reduce((sum, s) => sum + (s.sessionsLastMinute ?? 0), 0);
    const sessionsPerMinute = memory.sessions?.observe(startsLastMinute, now);
    const mayRaise = !deleting && this.#o.leadership.mayRaise(timings.leaseDurationMs);
    const allocation = allocate(
      {
        limit: budget.spec.maxConcurrentStreams,
        minPerPod: budget.spec.allocation.minPerPod,
        strategy: budget.spec.allocation.strategy,
        ...(sessionsPerMinute !== undefined && { sessionsPerMinute }),
      },
      members,
      // Session-rate cuts made under an earlier leader may still be inside the upstream's window.
      { mayRaise, mayRaiseSessions: mayRaise && this.#o.leadership.mayRaise(60_000) && now - memory.since >= 60_000 },
    );

    // Write the grants.
    let moved = 0;
    for (const [leaseKey, grant] of allocation.writes) {
      const member = members.find((m) => m.name === leaseKey);
      const lease = leaseByName.get(leaseKey);
      if (!member) continue;
      moved += Math.abs(grant.concurrency - (member.hasLease ? member.spec.concurrency : 0));
      if (!lease) {
        const pod = podOfCandidate.get(leaseKey);
        if (!pod) continue;
        if (await this.#createLease(budget, leaseKey, pod, grant, log)) memory.book.wrote(leaseKey, 1, grant, now);
        else memory.book.writeFailed(leaseKey);
        continue;
      }
      if (await this.#writeGrant(lease, member.epoch, grant, log)) {
        memory.book.wrote(leaseKey, member.epoch + 1, grant, now);
      } else {
        memory.book.writeFailed(leaseKey);
      }
    }
    if (moved >= Math.max(2, Math.ceil(budget.spec.maxConcurrentStreams * 0.2))) {
      await this.#event(budget, 'Normal', 'GrantsMoved', `Moved ${moved} stream slots between pods to follow demand`);
    }

    // Let leases go whose slots are surely free.
    for (const leaseKey of memory.book.releasable(now)) {
      const lease = leaseByName.get(leaseKey);
      if (lease) await this.#release(lease);
    }
    for (const m of members) {
      const lease = leaseByName.get(m.name);
      // A drained lease (grant 0 acknowledged, nothing in use) is not needed any more.
      if (lease && m.phase === 'draining' && m.ack?.epoch === m.epoch && m.spec.concurrency === 0 && m.inUse === 0) {
        await this.#release(lease);
      }
    }

    // Roll usage up into the status.
    const inUse = members.filter((m) => m.phase !== 'gone').reduce((sum, m) => sum + m.inUse, 0);
    memory.peaks.push({ at: now, value: inUse });
    memory.peaks = memory.peaks.filter((p) => p.at > now - this.#o.peakWindowSeconds * 1000);
    for (const lease of leases) {
      const total = lease.status?.upstreamRejectedTotal ?? 0;
      const before = memory.lastRejectedTotals.get(lease.metadata.name as string);
      if (before !== undefined && total > before) memory.rejections.push({ at: now, count: total - before });
      memory.lastRejectedTotals.set(lease.metadata.name as string, total);
    }
    memory.rejections = memory.rejections.filter((r) => r.at > now - 60_000);
    const upstreamRejections = memory.rejections.reduce((sum, r) => sum + r.count, 0);
    const stale = members.filter((m) => m.stale && m.phase !== 'gone').map((m) => podName(leaseByName.get(m.name)));
    const active = members.filter((m) => m.phase === 'active');
    const status = budgetStatus(
      {
        generation: budget.metadata.generation ?? 0,
        pods: active.length,
        allocated: allocation.allocated,
        inUse,
        queued: statuses.reduce((sum, s) => sum + (s.queued ?? 0), 0),
        peakInUse: Math.max(0, ...memory.peaks.map((p) => p.value)),
        peakWindowSeconds: this.#o.peakWindowSeconds,
        ...(sessionsPerMinute !== undefined && { newSessionsPerMinute: sessionsPerMinute }),
        admittedTotal: statuses.reduce((sum, s) => sum + (s.admittedTotal ?? 0), 0),
        rejectedTotal: statuses.reduce((sum, s) => sum + (s.rejectedTotal ?? 0), 0),
        reapedTotal: statuses.reduce((sum, s) => sum + (s.reapedTotal ?? 0), 0),
        upstreamRejectedTotal: statuses.reduce((sum, s) => sum + (s.upstreamRejectedTotal ?? 0), 0),
        pendingAcks: active.filter((m) => !m.hasLease || m.ack?.epoch !== m.epoch).length,
        staleLeases: stale,
        overCommitted: allocation.overCommitted
          ? { reserved: allocation.reserved, limit: budget.spec.maxConcurrentStreams }
          : undefined,
        upstreamRejections,
        sharedWith: this.#sharedWith(budget),
      },
      budget.status,
      this.#wall(),
    );
    // Conditions, pods and allocation go out at once; figures that move with every stream
    // (in use, counters) at most once per status interval, so that a busy budget does not
    // write its status — and send it to every watcher — many times a second.
    let statusDueInMs: number | undefined;
    if (!sameStatus(budget.status, status)) {
      const wait = this.#o.statusIntervalSeconds * 1000 - (now - memory.statusWrittenAt);
      if (wait <= 0 || !sameStatus(statusShape(budget.status), statusShape(status))) {
        await this.#writeStatus(budget, status, log);
        memory.statusWrittenAt = now;
      } else {
        statusDueInMs = wait;
      }
    }
    this.#o.metrics.budget(key, {
      limit: budget.spec.maxConcurrentStreams,
      allocated: allocation.allocated,
      reserved: allocation.reserved,
      inUse,
      staleLeases: stale.length,
    });

    // Events on transitions only.
    for (const pod of stale) {
      if (!memory.stale.has(pod)) {
        await this.#event(
          budget,
          'Warning',
          'LeaseStale',
          `Pod ${pod} has not reported for a lease duration; its grant stays reserved`,
        );
      }
    }
    memory.stale = new Set(stale);
    if (allocation.overCommitted && !memory.overCommitted) {
      await this.#event(
        budget,
        'Warning',
        'OverCommitted',
        `${allocation.reserved} streams reserved against a limit of ${budget.spec.maxConcurrentStreams}; nothing new is admitted until streams end`,
      );
    }
    memory.overCommitted = allocation.overCommitted;
    if (upstreamRejections > 0 && !memory.rejecting) {
      await this.#event(
        budget,
        'Warning',
        'UpstreamRejecting',
        `The upstream refused ${upstreamRejections} handshake(s)`,
      );
    }
    memory.rejecting = upstreamRejections > 0;

    if (deleting && leases.length === 0) {
      await this.#removeBudgetFinalizer(budget);
      this.#forgetBudget(key);
      return {};
    }
    const nextRelease = memory.book.nextRelease(now);
    const periodic = Math.max(250, timings.leaseDurationMs / 3);
    return { requeueAfterMs: Math.min(periodic, nextRelease ?? periodic, statusDueInMs ?? periodic) };
  }

  /** A budget that is gone: nothing to remember of it, and no gauges left behind. */
  #forgetBudget(key: string): void {
    this.#memory.delete(key);
    this.#o.metrics.forgetBudget(key);
  }

  #memoryFor(
    key: string,
    budget: StreamBudget,
    staleAfterMs: number,
    releaseDelayMs: number,
    now: number,
  ): BudgetMemory {
    let memory = this.#memory.get(key);
    const staleGoneHoldMs = (this.#o.staleGoneHoldSeconds ?? budget.spec.reaping.maxStreamSeconds) * 1000;
    if (!memory) {
      memory = {
        book: new LeaseBook({
          staleAfterMs,
          releaseDelayMs,
          staleGoneHoldMs,
          demandHalfLifeMs: this.#o.demandHalfLifeSeconds * 1000,
        }),
        peaks: [],
        rejections: [],
        lastRejectedTotals: new Map(),
        stale: new Set(),
        overCommitted: false,
        rejecting: false,
        since: now,
        statusWrittenAt: Number.NEGATIVE_INFINITY,
      };
      this.#memory.set(key, memory);
    }
    Object.assign(memory.book.timings, { staleAfterMs, releaseDelayMs, staleGoneHoldMs });
    const sessionsSpec = JSON.stringify(budget.spec.newSessions ?? null);
    if (memory.sessionsSpec !== sessionsSpec) {
      memory.sessionsSpec = sessionsSpec;
      memory.sessions = budget.spec.newSessions ? new SessionModel(budget.spec.newSessions, now) : undefined;
    }
    return memory;
  }

  #sharedWith(budget: StreamBudget): string[] {
    return this.#o.caches.budgets
      .list()
      .filter(
        (other) =>
          other.spec.projectId === budget.spec.projectId &&
          other.spec.provider === budget.spec.provider &&
          other.metadata.namespace !== budget.metadata.namespace,
      )
      .map((other) => `${other.metadata.namespace}/${other.metadata.name}`)
      .sort();
  }

  async #createLease(budget: StreamBudget, name: string, pod: V1Pod, grant: Grant, log: Logger): Promise<boolean> {
    const namespace = budget.metadata.namespace as string;
    const body: StreamLease = {
      apiVersion: apiVersion as StreamLease['apiVersion'],
      kind: 'StreamLease',
      metadata: {
        name,
        namespace,
        labels: {
          [budgetLabel]: labelValue(budget.metadata.name as string),
          [podNameLabel]: labelValue(pod.metadata?.name as string),
          [podUidLabel]: pod.metadata?.uid as string,
          'app.kubernetes.io/managed-by': 'sluice',
        },
        finalizers: [slotsHeldFinalizer],
        ownerReferences: [
          { apiVersion: 'v1', kind: 'Pod', name: pod.metadata?.name as string, uid: pod.metadata?.uid as string },
        ],
      },
      spec: {
        budgetName: budget.metadata.name as string,
        podName: pod.metadata?.name as string,
        podUID: pod.metadata?.uid as string,
        grant,
        epoch: 1,
      },
    };
    try {
      await this.#o.custom.createNamespacedCustomObject({
        group,
        version,
        namespace,
        plural: leasesPlural,
        body,
        fieldManager: operatorManager,
      });
      this.#o.metrics.apiWrites.inc({ kind: 'lease_create', result: 'ok' });
      log.info({ pod: pod.metadata?.name, lease: name, grant }, 'Created lease');
      return true;
    } catch (error) {
      this.#o.metrics.apiWrites.inc({ kind: 'lease_create', result: resultOf(error) });
      if (statusOf(error) === 409) return false;
      throw error;
    }
  }

  /** Writes a grant only if the lease is still at the epoch it was computed from. */
  async #writeGrant(lease: StreamLease, epoch: number, grant: Grant, log: Logger): Promise<boolean> {
    try {
      await this.#o.custom.patchNamespacedCustomObject(
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
      this.#o.metrics.apiWrites.inc({ kind: 'lease_grant', result: 'ok' });
      log.debug({ lease: lease.metadata.name, epoch: epoch + 1, grant }, 'Wrote grant');
      return true;
    } catch (error) {
      const result = resultOf(error);
      this.#o.metrics.apiWrites.inc({ kind: 'lease_grant', result });
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
        await this.#o.custom.deleteNamespacedCustomObject({ group, version, namespace, plural: leasesPlural, name });
      }
      this.#o.metrics.apiWrites.inc({ kind: 'lease_release', result: 'ok' });
      this.#o.log.info({ lease: name, budget: `${namespace}/${lease.spec.budgetName}` }, 'Released lease');
    } catch (error) {
      this.#o.metrics.apiWrites.inc({ kind: 'lease_release', result: resultOf(error) });
      if (statusOf(error) === 404 || resultOf(error) === 'conflict') return;
      throw error;
    }
  }

  async #addBudgetFinalizer(budget: StreamBudget): Promise<void> {
    await this.#setFinalizer(budgetsPlural, budget, true);
    this.#o.metrics.apiWrites.inc({ kind: 'budget_finalizer', result: 'ok' });
  }

  async #removeBudgetFinalizer(budget: StreamBudget): Promise<void> {
    try {
      await this.#setFinalizer(budgetsPlural, budget, false);
      this.#o.metrics.apiWrites.inc({ kind: 'budget_finalizer', result: 'ok' });
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
    await this.#o.custom.patchNamespacedCustomObject(
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
      await this.#o.custom.patchNamespacedCustomObjectStatus(
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
      this.#o.metrics.apiWrites.inc({ kind: 'budget_status', result: 'ok' });
    } catch (error) {
      this.#o.metrics.apiWrites.inc({ kind: 'budget_status', result: resultOf(error) });
      if (statusOf(error) === 404) return;
      log.warn({ code: statusOf(error) }, 'Failed to write budget status');
      throw error;
    }
  }

  async #event(budget: StreamBudget, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const namespace = budget.metadata.namespace as string;
    const time = this.#wall();
    try {
      await this.#o.core.createNamespacedEvent({
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
      this.#o.metrics.apiWrites.inc({ kind: 'event', result: 'ok' });
    } catch (error) {
      // An event is worth a try, never a failed reconcile.
      this.#o.metrics.apiWrites.inc({ kind: 'event', result: resultOf(error) });
    }
  }
}

function observe(lease: StreamLease): ObservedLease {
  const status = lease.status;
  return {
    name: lease.metadata.name as string,
    spec: lease.spec.grant,
    epoch: lease.spec.epoch,
    ...(status && {
      status: {
        ...(status.observedEpoch !== undefined && { observedEpoch: status.observedEpoch }),
        ...(status.grant && { grant: status.grant }),
        // Slots held after unclean ends count as in use.
        inUse: status.inUse ?? 0,
        ...(status.demand !== undefined && { demand: status.demand }),
        ...(status.heartbeatTime !== undefined && { heartbeatTime: status.heartbeatTime }),
      },
    }),
    statusFingerprint: JSON.stringify(status ?? null),
  };
}

/** What of a status must go out at once: its conditions' verdicts, generation, pods and allocation. */
function statusShape(status: StreamBudget['status']): NonNullable<StreamBudget['status']> {
  return {
    observedGeneration: status?.observedGeneration,
    pods: status?.pods,
    allocated: status?.allocated,
    conditions: status?.conditions?.map(({ type, status: verdict, reason }) => ({
      type,
      status: verdict,
      reason,
      lastTransitionTime: '',
      message: '',
    })),
  };
}

function terminal(pod: V1Pod): boolean {
  return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
}

function podName(lease: StreamLease | undefined): string {
  return lease?.spec.podName ?? '?';
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
