/**
 * The operator on the real control plane, with sidecar processes acting as pods and the
 * emulator as referee: grants follow demand, failures of every part keep the fleet under
 * the limit as the upstream counts it, and kubectl shows the figures.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { acknowledged, type StreamLease } from '../../crds/api/index.js';
import { testCluster } from '../cluster/test-cluster.js';
import { type LocalFleet, opened } from '../fleet/local-fleet.js';
import { closeAll, holdOpen } from '../fleet/streams.js';
import { testFleets } from '../fleet/test-fleets.js';
import { loggedLine } from '../support/script.js';
import type { OpenedStream } from '../support/stream-client.js';
import { waitFor } from '../support/wait.js';

const setMerge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
/** A fleet of its own for one test (tests here run one at a time). */
const fleet = testFleets('operator');

function grantOf(lease: StreamLease | undefined): number {
  return lease && acknowledged(lease) ? (lease.status?.grant?.concurrency ?? 0) : 0;
}

describe('the operator', () => {
  it('moves grants to where demand is and keeps the fleet under the limit', async () => {
    const f = await fleet({ limit: 12 });
    for (const name of ['pod-a', 'pod-b', 'pod-c']) await f.addPod(name);
    await f.startOperator();
    // Every pod gets a lease and acknowledges its grant.
    await f.acknowledgedLeases(3);

    const a: OpenedStream[] = [];
    await holdOpen(f, 'pod-a', 10, a);
    assert.ok(grantOf(await f.leaseOf('pod-a')) >= 10);

    // Demand moves to pod-b: pod-a lets go, pod-b's grant follows.
    await closeAll(a);
    const b: OpenedStream[] = [];
    await holdOpen(f, 'pod-b', 10, b);

    // Settled at the limit: only now does a pod refuse, and the fleet as a whole is full.
    await holdOpen(f, 'pod-c', 2, []);
    const refused = await f.open('pod-a', 1);
    assert.ok('status' in (refused[0] as object), 'a thirteenth stream is refused');
    const referee = f.referee();
    assert.equal(referee.inUse, 12);
    assert.ok(referee.peak <= 12, `the upstream saw ${referee.peak} streams at its peak`);
    assert.equal(referee.overLimitMoments, 0);

    const budget = await waitFor('the status to show the fleet', async () => {
      const current = await f.budget();
      return current.status?.inUse === 12 ? current : undefined;
    });
    assert.equal(budget.status?.pods, 3);
    assert.ok((budget.status?.allocated ?? 0) <= 12);
    assert.equal(budget.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
    await closeAll(b);
  });
});

/** A gauge's value for one budget from an operator's /metrics; NaN when it is not there. */
function gauge(metrics: string, name: string, budget: string): number {
  const line = metrics.split('\n').find((l) => l.startsWith(`${name}{budget="${budget}"}`));
  return line === undefined ? Number.NaN : Number(line.split(' ').pop());
}

function kill(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid !== undefined) process.kill(-pid, signal);
}

/** The leader among the running replicas, as its own metrics say. */
async function leaderOf(f: LocalFleet): Promise<LocalFleet['operators'][number]> {
  return waitFor('a leader', async () => {
    for (const operator of f.operators) {
      if (operator.script.child.exitCode !== null || operator.script.child.signalCode !== null) continue;
      // A stopped (SIGSTOP) replica never answers: ask with a deadline.
      const text = await fetch(`${operator.admin}/metrics`, { signal: AbortSignal.timeout(1000) }).then(
        (r) => r.text(),
        () => '',
      );
      if (/^sluice_operator_leader 1$/m.test(text)) return operator;
    }
    return undefined;
  });
}

describe('the operator under failure', () => {
  it("holds a killed sidecar's slots after its restart until the release delay has passed", async () => {
    const f = await fleet({ limit: 6, releaseDelaySeconds: 8 });
    const a = await f.addPod('pod-a');
    await f.addPod('pod-b');
    await f.startOperator();
    await f.acknowledgedLeases(2);
    const streams: OpenedStream[] = [];
    await holdOpen(f, 'pod-a', 4, streams);

    kill(a.sidecar?.script.child.pid, 'SIGKILL');
    await a.sidecar?.script.exited;
    const restarted = await f.startSidecar(a);
    // The upstream still counts the four streams; the restarted sidecar knows it.
    const held = await loggedLine<{ slots: number }>(restarted.script, 'Held slots a previous run reported');
    assert.ok(held.slots >= 4, `the restarted sidecar held ${held.slots} slots`);
    const early = await f.open('pod-a', 3);
    await holdOpen(f, 'pod-a', 3, opened(early));

    // The referee's book, on its own clock: the kill left four unclean ends, and pod-a got
    // nothing over them while they were counted, however soon or late it asked.
    const book = f.refereeLedger();
    const ends = book.filter((e) => e.kind === 'ended');
    assert.deepEqual(
      ends.map((e) => e.clean),
      [false, false, false, false],
      'the kill ended four streams without a close',
    );
    const releasedAt = Math.max(...ends.map((e) => e.countedUntil));
    const killedAt = Math.min(...ends.map((e) => e.at));
    const admitted = book.filter((e) => e.kind === 'accepted' && e.tags.includes('pod-a') && e.at > killedAt);
    assert.equal(admitted.length, 3);
    for (const e of admitted) {
      assert.ok(
        e.at >= releasedAt,
        `pod-a got a stream ${releasedAt - e.at} ms before the upstream released its slots`,
      );
    }
    assert.equal(f.referee().overLimitMoments, 0);
    assert.ok(f.referee().peak <= 6);
  });

  it("returns a vanished pod's capacity only after the release delay", async () => {
    const f = await fleet({ limit: 6, releaseDelaySeconds: 6, minPerPod: 0 });
    const a = await f.addPod('pod-a');
    await f.addPod('pod-b');
    await f.startOperator();
    await f.acknowledgedLeases(2);
    await holdOpen(f, 'pod-a', 6, []);
    const lease = (await f.leaseOf('pod-a')) as StreamLease;

    kill(a.sidecar?.script.child.pid, 'SIGKILL');
    await f.core.deleteNamespacedPod({ name: 'pod-a', namespace: f.namespace, gracePeriodSeconds: 0 });
    // The finalizer keeps the lease, and its reservation, until the slots are surely free.
    const held = await f.leases();
    assert.ok(held.some((l) => l.metadata.name === lease.metadata.name));
    const b: OpenedStream[] = [];
    await holdOpen(f, 'pod-b', 6, b);
    await waitFor('the lease to go', async () =>
      (await f.leases()).some((l) => l.metadata.name === lease.metadata.name) ? undefined : true,
    );

    // The lower bound of the hold, from the referee's book: the killed sidecar's six streams
    // ended without a close, so the upstream counted them for the release delay, and pod-b
    // was given none of that capacity before the last of them was released.
    const book = f.refereeLedger();
    const ends = book.filter((e) => e.kind === 'ended');
    assert.deepEqual(
      ends.map((e) => e.clean),
      Array(6).fill(false),
      'the kill ended six streams without a close',
    );
    const releasedAt = Math.max(...ends.map((e) => e.countedUntil));
    const toB = book.filter((e) => e.kind === 'accepted' && e.tags.includes('pod-b'));
    assert.equal(toB.length, 6);
    for (const e of toB) {
      assert.ok(
        e.at >= releasedAt,
        `pod-b got a stream ${releasedAt - e.at} ms before the upstream released pod-a's slots`,
      );
    }
    assert.equal(f.referee().overLimitMoments, 0);
    await closeAll(b);
  });

  it('holds a pod that vanished while its lease was stale, until its lease is let go by hand', async () => {
    const f = await fleet({ limit: 6, minPerPod: 0, operatorEnv: { SLUICE_STALE_GONE_HOLD_SECONDS: '3600' } });
    const a = await f.addPod('pod-a');
    await f.addPod('pod-b');
    const operator = await f.startOperator();
    await f.acknowledgedLeases(2);
    await holdOpen(f, 'pod-a', 4, []);
    const lease = (await f.leaseOf('pod-a')) as StreamLease;

    // pod-a's sidecar falls silent (as on a node cut off from the API), its lease goes stale,
    // and then the pod is deleted.
    kill(a.sidecar?.script.child.pid, 'SIGKILL');
    await waitFor('the lease to be called stale', async () =>
      (await f.budget()).status?.conditions?.some((c) => c.type === 'Degraded' && c.reason === 'LeasesStale'),
    );
    await f.core.deleteNamespacedPod({ name: 'pod-a', namespace: f.namespace, gracePeriodSeconds: 0 });

    // What a user sees: the lease stays, terminating under its finalizer, and the operator
    // counts its reservation beside the grants.
    const held = await waitFor('the lease to be terminating', async () => {
      const current = (await f.leases()).find((l) => l.metadata.name === lease.metadata.name);
      return current?.metadata.deletionTimestamp ? current : undefined;
    });
    assert.deepEqual(held.metadata.finalizers, ['sluice.dev/slots-held']);
    const key = `${f.namespace}/flux`;
    await waitFor('the hold to show in the metrics', async () => {
      const text = await (await fetch(`${operator.admin}/metrics`)).text();
      const reserved = gauge(text, 'sluice_operator_budget_reserved_streams', key);
      const allocated = gauge(text, 'sluice_operator_budget_allocated_streams', key);
      return reserved - allocated >= 4 ? true : undefined;
    });
    assert.ok(opened(await f.open('pod-b', 6)).length <= 2, 'pod-b gets only what the hold leaves');

    // The README's way out, once the pod's streams are known to have ended.
    const cluster = await testCluster();
    const patched = await cluster.kubectl([
      'patch',
      'streamlease',
      lease.metadata.name as string,
      `--namespace=${f.namespace}`,
      '--type=json',
      '-p',
      '[{"op":"remove","path":"/metadata/finalizers"}]',
    ]);
    assert.equal(patched.code, 0, patched.stderr);
    await holdOpen(f, 'pod-b', 6, []);
    assert.equal(f.referee().overLimitMoments, 0);
  });

  it('keeps the fleet under the limit while the operator is killed and restarted', async () => {
    const f = await fleet({ limit: 8 });
    await f.addPod('pod-a');
    await f.addPod('pod-b');
    const operator = await f.startOperator();
    await f.acknowledgedLeases(2);
    const a: OpenedStream[] = [];
    await holdOpen(f, 'pod-a', 5, a);
    kill(operator.script.child.pid, 'SIGKILL');
    await operator.script.exited;
    // Demand moves while no operator runs: pod-b is refused rather than let over.
    await closeAll(a);
    await f.open('pod-b', 8);
    await f.startOperator();
    await holdOpen(f, 'pod-b', 7, []);
    assert.equal(f.referee().overLimitMoments, 0);
    assert.ok(f.referee().peak <= 8);
  });

  it('fails over to a standby replica when the leader dies', async () => {
    const f = await fleet({ limit: 8 });
    await f.addPod('pod-a');
    await f.addPod('pod-b');
    await f.startOperator();
    await f.startOperator();
    await f.acknowledgedLeases(2);
    const leader = await leaderOf(f);
    kill(leader.script.child.pid, 'SIGKILL');
    await leader.script.exited;
    const next = await leaderOf(f);
    assert.notEqual(next.identity, leader.identity);
    await holdOpen(f, 'pod-b', 7, []);
    assert.equal(f.referee().overLimitMoments, 0);
  });

  it('lets a paused leader wake to find itself deposed, its late writes refused', async () => {
    const f = await fleet({ limit: 8 });
    await f.addPod('pod-a');
    await f.addPod('pod-b');
    await f.startOperator();
    await f.startOperator();
    await f.acknowledgedLeases(2);
    const leader = await leaderOf(f);
    kill(leader.script.child.pid, 'SIGSTOP');
    try {
      const next = await waitFor('the standby to take over', async () => {
        const candidate = await leaderOf(f).catch(() => undefined);
        return candidate && candidate.identity !== leader.identity ? candidate : undefined;
      });
      // Demand moves under the new leader while the old one sleeps.
      await holdOpen(f, 'pod-b', 7, []);
      assert.ok(next);
    } finally {
      kill(leader.script.child.pid, 'SIGCONT');
    }
    await waitFor('the old leader to step down', () => leader.script.output().includes('"msg":"Stopped leading"'));
    await f.open('pod-a', 4);
    assert.equal(f.referee().overLimitMoments, 0);
    assert.ok(f.referee().peak <= 8);
  });

  it('lowers a limit below use without ending a stream: OverCommitted until streams end', async () => {
    const f = await fleet({ limit: 10 });
    await f.addPod('pod-a');
    await f.startOperator();
    await f.acknowledgedLeases(1);
    const a: OpenedStream[] = [];
    await holdOpen(f, 'pod-a', 8, a);
    await f.patchBudgetSpec({ maxConcurrentStreams: 4 });
    const budget = await waitFor('OverCommitted', async () => {
      const current = await f.budget();
      const degraded = current.status?.conditions?.find((c) => c.type === 'Degraded');
      return degraded?.status === 'True' && degraded.reason === 'OverCommitted' ? current : undefined;
    });
    assert.match(budget.status?.conditions?.find((c) => c.type === 'Degraded')?.message ?? '', /limit of 4/);
    const events = await waitFor('an OverCommitted event', async () => {
      const list = await f.core.listNamespacedEvent({ namespace: f.namespace });
      return list.items.find((e) => e.reason === 'OverCommitted' && e.involvedObject.kind === 'StreamBudget');
    });
    assert.equal(events.type, 'Warning');
    await waitFor('the grant to fall', async () => (grantOf(await f.leaseOf('pod-a')) <= 4 ? true : undefined));
    assert.equal(a.filter((s) => s.ws.readyState === s.ws.OPEN).length, 8, 'no stream was ended');
    assert.equal(opened(await f.open('pod-a', 1)).length, 0, 'nothing new while over');
    // Streams end; once under the new limit, the condition clears.
    await closeAll(a);
    await waitFor('Degraded to clear', async () => {
      const degraded = (await f.budget()).status?.conditions?.find((c) => c.type === 'Degraded');
      if (process.env.DEBUG_FLEET) console.error(JSON.stringify(degraded), JSON.stringify(await f.leases()));
      return degraded?.status === 'False' ? true : undefined;
    });
    await holdOpen(f, 'pod-a', 4, []);
  });
});

describe('pods coming and going', () => {
  it('follows a rollout, a pod relabelled out of the selector and a pod recreated under its name', async () => {
    const f = await fleet({ limit: 6, minPerPod: 0 });
    await f.addPod('old-0');
    await f.addPod('old-1');
    await f.startOperator();
    await f.acknowledgedLeases(2);
    const old: OpenedStream[] = [];
    await holdOpen(f, 'old-0', 3, old);

    // Rollout: old-0 terminates (a finalizer keeps it draining), new-0 starts.
    await f.core.patchNamespacedPod(
      { name: 'old-0', namespace: f.namespace, body: { metadata: { finalizers: ['test.sluice.dev/draining'] } } },
      setMerge,
    );
    await f.core.deleteNamespacedPod({ name: 'old-0', namespace: f.namespace });
    await f.addPod('new-0');
    await waitFor('old-0 drained to a grant of 0', async () =>
      (await f.leaseOf('old-0'))?.status?.grant?.concurrency === 0 ? true : undefined,
    );
    assert.equal(old.filter((s) => s.ws.readyState === s.ws.OPEN).length, 3, 'draining streams run on');
    await holdOpen(f, 'new-0', 3, []);

    // Relabelled out of the selector: old-1's grant goes to 0 and its lease goes.
    await f.core.patchNamespacedPod(
      { name: 'old-1', namespace: f.namespace, body: { metadata: { labels: { app: 'other' } } } },
      setMerge,
    );
    await waitFor('old-1 to lose its lease', async () => ((await f.leaseOf('old-1')) ? undefined : true));

    // Recreated under the same name: a new UID, a new lease.
    await closeAll(old);
    await f.core.patchNamespacedPod(
      { name: 'old-0', namespace: f.namespace, body: { metadata: { finalizers: [] } } },
      setMerge,
    );
    await waitFor('old-0 to go', async () =>
      f.core.readNamespacedPod({ name: 'old-0', namespace: f.namespace }).then(
        () => undefined,
        () => true,
      ),
    );
    const before = (await f.leases()).map((l) => l.metadata.name);
    await f.addPod('old-0');
    const renewed = await waitFor('a lease for the new old-0', async () => f.leaseOf('old-0'));
    assert.ok(!before.includes(renewed.metadata.name), 'the recreated pod does not inherit a lease');
    assert.equal(f.referee().overLimitMoments, 0);
  });
});

describe('kubectl', () => {
  it('shows the live figures of budgets and leases', async () => {
    const f = await fleet({ limit: 5 });
    await f.addPod('pod-a');
    await f.startOperator();
    await f.acknowledgedLeases(1);
    await holdOpen(f, 'pod-a', 2, []);
    const cluster = await testCluster();
    const budgets = await waitFor('kubectl get streambudgets to show 2 in use', async () => {
      const out = await cluster.kubectl(['get', 'streambudgets', '-n', f.namespace]);
      return /flux\s+5\s+2\s+\d+\s+1\s+True/.test(out.stdout) ? out.stdout : undefined;
    });
    assert.match(budgets, /LIMIT\s+IN USE\s+ALLOCATED\s+PODS\s+READY/);
    const leases = await waitFor('kubectl get streamleases to show the pod', async () => {
      const out = await cluster.kubectl(['get', 'sl', '-n', f.namespace]);
      return /flux\s+pod-a\s+\d+\s+2\s/.test(out.stdout) ? out.stdout : undefined;
    });
    assert.match(leases, /BUDGET\s+POD\s+GRANT\s+IN USE/);
  });
});
