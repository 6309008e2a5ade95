/**
 * Leader election against a real API server, with short timings: one leader among two;
 * a stopping leader hands over at once; a leader that cannot renew steps down and its
 * late write is refused; a silent holder is outwaited on our own clock, whatever its
 * timestamps claim.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ApiException, CoordinationV1Api, type KubeConfig, type V1MicroTime } from '@kubernetes/client-node';
import {
  LeaderElectionError,
  type LeaderElectionOptions,
  LeaderElector,
  type LeaseApi,
} from '../../operator/kube/leader-election.js';
import { testCluster, testNamespace } from '../cluster/test-cluster.js';
import { waitFor } from '../support/wait.js';

const timings = { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 500 };

/** An elector, and what its callbacks said, in order. */
interface Contender {
  elector: LeaderElector;
  events: string[];
}

/** The real API, except that writes can be held back and sent late, as by a paused process. */
class PausableLeases implements LeaseApi {
  readonly #api: CoordinationV1Api;
  #paused: Promise<void> | undefined;
  #resume: () => void = () => undefined;
  /** How each write held back fared once it was finally sent: 'written' or the HTTP status. */
  lateWrites: Promise<number | 'written'>[] = [];

  constructor(config: KubeConfig) {
    this.#api = config.makeApiClient(CoordinationV1Api);
  }

  pause(): void {
    this.#paused = new Promise((resolve) => {
      this.#resume = resolve;
    });
  }

  resume(): void {
    this.#paused = undefined;
    this.#resume();
  }

  readNamespacedLease: LeaseApi['readNamespacedLease'] = (param, options) =>
    this.#api.readNamespacedLease(param, options);

  createNamespacedLease: LeaseApi['createNamespacedLease'] = (param, options) =>
    this.#api.createNamespacedLease(param, options);

  replaceNamespacedLease: LeaseApi['replaceNamespacedLease'] = async (param, options) => {
    const paused = this.#paused;
    if (!paused) return this.#api.replaceNamespacedLease(param, options);
    await paused;
    // Sent as it was made, long after: the elector has given up waiting for it by now.
    const write = this.#api.replaceNamespacedLease(param);
    this.lateWrites.push(
      write.then(
        () => 'written' as const,
        (error) => (error instanceof ApiException ? error.code : Promise.reject(error)),
      ),
    );
    return write;
  };
}

describe('LeaderElector', () => {
  let config: KubeConfig;
  let leases: CoordinationV1Api;
  const electors: LeaderElector[] = [];

  before(async () => {
    config = (await testCluster()).kubeConfig();
    leases = config.makeApiClient(CoordinationV1Api);
  });

  after(async () => {
    await Promise.all(electors.map((elector) => elector.stop()));
  });

  function contender(
    identity: string,
    namespace: string,
    options: Partial<LeaderElectionOptions> & { api?: LeaseApi } = {},
  ): Contender {
    const events: string[] = [];
    const elector = new LeaderElector(options.api ?? leases, {
      leaseName: 'sluice-operator',
      namespace,
      identity,
      ...timings,
      onStartedLeading: () => events.push('started'),
      onStoppedLeading: () => events.push('stopped'),
      onNewLeader: (leader) => events.push(`leader ${leader}`),
      ...options,
    });
    electors.push(elector);
    return { elector, events };
  }

  async function readLease(namespace: string) {
    return leases.readNamespacedLease({ name: 'sluice-operator', namespace });
  }

  test('elects one leader among two, and the other learns who it is', async () => {
    const namespace = await testNamespace('leader');
    const a = contender('a', namespace);
    const b = contender('b', namespace);
    a.elector.start();
    b.elector.start();
    const leader = await waitFor('a leader', () => (a.elector.isLeader ? a : b.elector.isLeader ? b : undefined));
    const follower = leader === a ? b : a;
    const name = leader.elector.identity;
    await waitFor('the follower to learn the leader', () => follower.events.includes(`leader ${name}`));

    // Several renewals later there is still one leader, and always the same.
    const renewals = new Set<number>();
    const seen = new Set<string>();
    await waitFor('three renewals', () => {
      seen.add(`${leader.elector.isLeader} ${follower.elector.isLeader}`);
      renewals.add(leader.elector.lastRenewedMs as number);
      return renewals.size >= 3;
    });
    assert.deepEqual([...seen], ['true false']);
    assert.deepEqual(leader.events, [`leader ${name}`, 'started']);
    assert.deepEqual(follower.events, [`leader ${name}`]);
    assert.ok((leader.elector.leadingSinceMs as number) <= (leader.elector.lastRenewedMs as number));
    assert.equal(follower.elector.leadingSinceMs, undefined);
    assert.equal(follower.elector.leader, name);

    const lease = await readLease(namespace);
    assert.equal(lease.spec?.holderIdentity, name);
    assert.equal(lease.spec?.leaseDurationSeconds, 3);
    assert.equal(lease.spec?.leaseTransitions, 0);
    // A MicroTime, as the API server insists: six fractional digits.
    assert.match(String(lease.spec?.renewTime), /\.\d{6}Z$/);
  });

  test('hands over at once when the leader stops: the lease is released, not left to expire', async () => {
    const namespace = await testNamespace('leader');
    // A lease that would take 60 s to expire: only a release lets the other lead soon.
    const long = { leaseDurationMs: 60_000, renewDeadlineMs: 40_000, retryPeriodMs: 500 };
    const a = contender('a', namespace, long);
    a.elector.start();
    await waitFor('a to lead', () => a.elector.isLeader);
    const b = contender('b', namespace, long);
    b.elector.start();
    await waitFor('b to learn the leader', () => b.events.includes('leader a'));

    await a.elector.stop();
    assert.equal(a.elector.isLeader, false);
    assert.deepEqual(a.events, ['leader a', 'started', 'stopped']);
    await waitFor('b to take over', () => b.elector.isLeader, { timeoutMs: 20_000 });
    assert.deepEqual(b.events, ['leader a', 'leader b', 'started']);
    const lease = await readLease(namespace);
    assert.equal(lease.spec?.holderIdentity, 'b');
    assert.equal(lease.spec?.leaseTransitions, 1);
  });

  test('steps down when it cannot renew in time, and its late write is refused with 409', async (t) => {
    const namespace = await testNamespace('leader');
    const pausable = new PausableLeases(config);
    t.after(() => pausable.resume());
    const a = contender('a', namespace, { api: pausable });
    a.elector.start();
    await waitFor('a to lead', () => a.elector.isLeader);
    const b = contender('b', namespace);
    b.elector.start();
    await waitFor('b to learn the leader', () => b.events.includes('leader a'));

    pausable.pause();
    await waitFor('a to step down', () => a.events.includes('stopped'));
    assert.equal(a.elector.isLeader, false);
    assert.equal(a.elector.leadingSinceMs, undefined);
    await waitFor('b to take over', () => b.elector.isLeader);
    const taken = await readLease(namespace);
    assert.equal(taken.spec?.holderIdentity, 'b');
    assert.equal(taken.spec?.leaseTransitions, 1);

    pausable.resume();
    await waitFor('the late write to be sent', () => pausable.lateWrites.length > 0);
    assert.deepEqual(await Promise.all(pausable.lateWrites), [409]);

    // A competes again, learns that b leads, and b renews in time, so it leads on alone.
    await waitFor('a to learn that b leads', () => a.events.includes('leader b'));
    const renewed = b.elector.lastRenewedMs as number;
    await waitFor('b to renew again', () => (b.elector.lastRenewedMs as number) > renewed);
    assert.equal(a.elector.isLeader, false);
    assert.equal(b.elector.isLeader, true);
    assert.equal((await readLease(namespace)).spec?.holderIdentity, 'b');
    assert.deepEqual(a.events, ['leader a', 'started', 'stopped', 'leader b']);
  });

  test("outwaits a silent holder on its own clock, even when the holder's clock runs ahead", async () => {
    const namespace = await testNamespace('leader');
    const farFuture = '2100-01-01T00:00:00.000000Z';
    await leases.createNamespacedLease({
      namespace,
      body: {
        metadata: { name: 'sluice-operator', namespace },
        spec: {
          holderIdentity: 'ghost',
          leaseDurationSeconds: 3,
          acquireTime: farFuture as unknown as V1MicroTime,
          renewTime: farFuture as unknown as V1MicroTime,
          leaseTransitions: 4,
        },
      },
    });
    const a = contender('a', namespace);
    a.elector.start();
    await waitFor('a to see the ghost', () => a.events.includes('leader ghost'));
    assert.equal(a.elector.isLeader, false);
    await waitFor('a to take over', () => a.elector.isLeader);
    assert.deepEqual(a.events, ['leader ghost', 'leader a', 'started']);
    const lease = await readLease(namespace);
    assert.equal(lease.spec?.holderIdentity, 'a');
    assert.equal(lease.spec?.leaseTransitions, 5);
  });

  test('refuses timings that cannot work', () => {
    const base = { leaseName: 'l', namespace: 'n', identity: 'a' };
    for (const bad of [
      { leaseDurationMs: 2000, renewDeadlineMs: 2000, retryPeriodMs: 500 },
      { leaseDurationMs: 3000, renewDeadlineMs: 500, retryPeriodMs: 500 },
      { leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 0 },
    ]) {
      assert.throws(
        () => new LeaderElector(leases, { ...base, ...bad }),
        (error) => error instanceof LeaderElectionError && error.code === 'SLUICE_E_LEADER_ELECTION_OPTIONS',
      );
    }
  });
});
