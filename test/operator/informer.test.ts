/**
 * The informer against a real API server: it lists, watches and tells its handlers of
 * adds, updates and deletes; a label selector narrows it; it survives the API server
 * going away, backing off while it is gone and relisting when its resourceVersion
 * expired, so that no change, and no delete, is missed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
} from '@kubernetes/client-node';
import { pino } from 'pino';
import type { Clock } from '../../crds/api/clock.js';
import { type StreamLease, streamLeaseResource } from '../../crds/api/index.js';
import { Informer, type InformerOptions, podsResource } from '../../crds/kube/informer.js';
import { ControlPlane } from '../cluster/control-plane.js';
import { crdManifests } from '../cluster/crds.js';
import { testCluster, testNamespace } from '../cluster/test-cluster.js';
import { waitFor } from '../support/wait.js';

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const { group, version, plural } = streamLeaseResource;

/** Makes, changes and deletes StreamLeases the way any other client would. */
class Leases {
  readonly #api: CustomObjectsApi;

  constructor(
    config: KubeConfig,
    readonly namespace: string,
  ) {
    this.#api = config.makeApiClient(CustomObjectsApi);
  }

  async create(name: string, labels: Record<string, string> = {}): Promise<void> {
    const { apiVersion, kind } = streamLeaseResource;
    const body = {
      apiVersion,
      kind,
      metadata: { name, labels },
      spec: { budgetName: 'flux', podName: name, podUID: `uid-${name}`, grant: { concurrency: 1 }, epoch: 1 },
    };
    await this.#api.createNamespacedCustomObject({ group, version, plural, namespace: this.namespace, body });
  }

  async patch(name: string, patch: Record<string, unknown>): Promise<void> {
    const target = { group, version, plural, namespace: this.namespace, name };
    await this.#api.patchNamespacedCustomObject({ ...target, body: patch }, mergePatch);
  }

  async delete(name: string): Promise<void> {
    await this.#api.deleteNamespacedCustomObject({ group, version, plural, namespace: this.namespace, name });
  }
}

/** Every event the informer told its handlers of, as short lines. */
function recordEvents<T extends KubernetesObject>(informer: Informer<T>, describe: (object: T) => string): string[] {
  const events: string[] = [];
  informer.addHandlers({
    onAdd: (object) => events.push(`add ${describe(object)}`),
    onUpdate: (old, object) => events.push(`update ${describe(old)} -> ${describe(object)}`),
    onDelete: (object) => events.push(`delete ${describe(object)}`),
  });
  return events;
}

const leaseLine = (lease: StreamLease) => `${lease.metadata?.name}@${lease.spec.epoch}`;

function names(objects: KubernetesObject[]): string[] {
  return objects.map((o) => o.metadata?.name ?? '').sort();
}

/** Real timers that remember every delay asked for, and can hold timers back until released. */
class RecordingClock implements Clock {
  readonly delays: number[] = [];
  #held: { callback: () => void }[] | undefined;

  now(): number {
    return performance.now();
  }

  setTimer(callback: () => void, ms: number): unknown {
    this.delays.push(ms);
    if (this.#held) {
      const entry = { callback };
      this.#held.push(entry);
      return entry;
    }
    return setTimeout(callback, ms);
  }

  clearTimer(timer: unknown): void {
    if (this.#held?.includes(timer as { callback: () => void })) {
      this.#held = this.#held.filter((entry) => entry !== timer);
    } else {
      clearTimeout(timer as NodeJS.Timeout);
    }
  }

  /** Timers set from now on wait until `release()`. */
  hold(): void {
    this.#held = [];
  }

  get heldCount(): number {
    return this.#held?.length ?? 0;
  }

  release(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const { callback } of held) setTimeout(callback, 0);
  }
}

/** A logger whose lines the test can read. */
function capturingLogger() {
  const lines: { msg: string; [field: string]: unknown }[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { log, lines };
}

describe('Informer', () => {
  let config: KubeConfig;
  const informers: { stop(): Promise<void> }[] = [];

  before(async () => {
    config = (await testCluster()).kubeConfig();
  });

  after(async () => {
    await Promise.all(informers.map((informer) => informer.stop()));
  });

  function informer<T extends KubernetesObject>(options: InformerOptions): Informer<T> {
    const made = new Informer<T>(config, options);
    informers.push(made);
    return made;
  }

  test('lists what exists, then reports adds, updates and deletes as they happen', async () => {
    const namespace = await testNamespace('informer');
    const leases = new Leases(config, namespace);
    await leases.create('a');
    const leaseInformer = informer<StreamLease>({ resource: streamLeaseResource, namespace });
    const events = recordEvents(leaseInformer, leaseLine);
    leaseInformer.start();
    await leaseInformer.synced();
    assert.deepEqual(events, ['add a@1']);

    await leases.create('b');
    await waitFor('the add of b', () => events.includes('add b@1'));
    await leases.patch('a', { spec: { epoch: 2 } });
    await waitFor('the update of a', () => events.includes('update a@1 -> a@2'));
    await leases.delete('b');
    await waitFor('the delete of b', () => events.includes('delete b@1'));

    assert.deepEqual(events, ['add a@1', 'add b@1', 'update a@1 -> a@2', 'delete b@1']);
    assert.deepEqual(names(leaseInformer.list()), ['a']);
    assert.equal(leaseInformer.get(namespace, 'a')?.spec.epoch, 2);
    assert.equal(leaseInformer.get(namespace, 'b'), undefined);

    // Once stopped it hears nothing more, though a running informer does.
    await leaseInformer.stop();
    await leases.create('c');
    const witness = informer<StreamLease>({ resource: streamLeaseResource, namespace });
    const witnessed = recordEvents(witness, leaseLine);
    witness.start();
    await witness.synced();
    await leases.patch('c', { spec: { epoch: 2 } });
    await waitFor('a running informer to see the update of c', () => witnessed.includes('update c@1 -> c@2'));
    assert.deepEqual(events, ['add a@1', 'add b@1', 'update a@1 -> a@2', 'delete b@1']);
  });

  test('lists in pages and still sees every object', async () => {
    const namespace = await testNamespace('informer');
    const leases = new Leases(config, namespace);
    const all = ['a', 'b', 'c', 'd', 'e'];
    for (const name of all) await leases.create(name);
    const leaseInformer = informer<StreamLease>({ resource: streamLeaseResource, namespace, pageSize: 2 });
    leaseInformer.start();
    await leaseInformer.synced();
    assert.deepEqual(names(leaseInformer.list()), all);
    for (const lease of leaseInformer.list()) assert.equal(lease.kind, 'StreamLease');
  });

  test('sees only what its label selector picks; a relabelled object comes and goes', async () => {
    const namespace = await testNamespace('informer');
    const leases = new Leases(config, namespace);
    await leases.create('picked', { team: 'voice' });
    await leases.create('other', { team: 'text' });
    const leaseInformer = informer<StreamLease>({
      resource: streamLeaseResource,
      namespace,
      labelSelector: 'team=voice',
    });
    const events = recordEvents(leaseInformer, leaseLine);
    leaseInformer.start();
    await leaseInformer.synced();
    assert.deepEqual(events, ['add picked@1']);

    await leases.patch('other', { metadata: { labels: { team: 'voice' } } });
    await waitFor('other to be picked once relabelled', () => events.includes('add other@1'));
    await leases.patch('picked', { metadata: { labels: { team: 'text' } } });
    await waitFor('picked to leave once relabelled', () => events.includes('delete picked@1'));
    await leases.create('late', { team: 'text' });
    await leases.create('late-picked', { team: 'voice' });
    await waitFor('the add of late-picked', () => events.includes('add late-picked@1'));

    assert.deepEqual(events, ['add picked@1', 'add other@1', 'delete picked@1', 'add late-picked@1']);
    assert.deepEqual(names(leaseInformer.list(namespace)), ['late-picked', 'other']);
  });

  test('watches Pods in every namespace, listed and watched ones alike', async () => {
    const [first, second] = [await testNamespace('informer'), await testNamespace('informer')];
    const core = config.makeApiClient(CoreV1Api);
    const run = `run-${process.pid}-${Date.now()}`;
    const createPod = async (namespace: string, name: string) => {
      await waitFor('the default service account', () =>
        core.readNamespacedServiceAccount({ name: 'default', namespace }),
      );
      await core.createNamespacedPod({
        namespace,
        body: {
          metadata: { name, labels: { 'sluice.dev/informer-test': run } },
          spec: { containers: [{ name: 'app', image: 'registry.invalid/app:1' }] },
        },
      });
    };
    await createPod(first, 'listed');
    const podInformer = informer<V1Pod>({ resource: podsResource, labelSelector: `sluice.dev/informer-test=${run}` });
    const events = recordEvents(podInformer, (pod) => `${pod.metadata?.namespace}/${pod.metadata?.name}`);
    podInformer.start();
    await podInformer.synced();
    await createPod(second, 'watched');
    await waitFor('the add of the second pod', () => events.includes(`add ${second}/watched`));

    const listed = podInformer.get(first, 'listed');
    const watched = podInformer.get(second, 'watched');
    for (const pod of [listed, watched]) {
      assert.equal(pod?.kind, 'Pod');
      assert.equal(pod?.apiVersion, 'v1');
      // The JSON as served: a timestamp is a string however it came in, never a Date.
      assert.equal(typeof pod?.metadata?.creationTimestamp, 'string');
    }
    assert.deepEqual(names(podInformer.list()), ['listed', 'watched']);

    // A pod no node has taken is deleted at once, without a grace period.
    await core.deleteNamespacedPod({ name: 'listed', namespace: first });
    await waitFor('the delete of the first pod', () => events.includes(`delete ${first}/listed`));
    assert.deepEqual(names(podInformer.list()), ['watched']);
  });

  test('tells handlers added late of what is cached, and a throwing handler stops neither the others nor the watch', async () => {
    const namespace = await testNamespace('informer');
    const leases = new Leases(config, namespace);
    await leases.create('a');
    const leaseInformer = informer<StreamLease>({
      resource: streamLeaseResource,
      namespace,
      log: pino({ level: 'silent' }),
    });
    leaseInformer.addHandlers({
      onAdd: () => {
        throw new Error('a broken handler');
      },
    });
    leaseInformer.start();
    await leaseInformer.synced();
    const events = recordEvents(leaseInformer, leaseLine);
    assert.deepEqual(events, ['add a@1']);
    await leases.create('b');
    await waitFor('the add of b', () => events.includes('add b@1'));
  });

  test('rejects synced() with a coded error when stopped before its first list', async () => {
    const leaseInformer = informer<StreamLease>({ resource: streamLeaseResource, namespace: 'default' });
    const synced = leaseInformer.synced();
    await leaseInformer.stop();
    await assert.rejects(synced, { code: 'SLUICE_E_INFORMER_STOPPED' });
    assert.throws(() => leaseInformer.start(), { code: 'SLUICE_E_INFORMER_STOPPED' });
  });
});

describe('Informer when the API server goes away', () => {
  // A control plane of its own: these tests stop its API server.
  let plane: ControlPlane;
  let config: KubeConfig;
  const informers: Informer<StreamLease>[] = [];

  before(async () => {
    plane = await ControlPlane.start({ crds: crdManifests });
    config = plane.kubeConfig();
  });

  after(async () => {
    await Promise.all(informers.map((informer) => informer.stop()));
    await plane?.stop();
  });

  async function namespace(name: string): Promise<string> {
    await config.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name } } });
    return name;
  }

  test('restarts the watch with growing backoff while the API server is down, then sees every change made after it returns', async () => {
    const leases = new Leases(config, await namespace('backoff'));
    await leases.create('a');
    await leases.create('b');
    const clock = new RecordingClock();
    const { log, lines } = capturingLogger();
    const leaseInformer = new Informer<StreamLease>(config, {
      resource: streamLeaseResource,
      namespace: leases.namespace,
      initialBackoffMs: 100,
      maxBackoffMs: 800,
      watchTimeoutSeconds: 60,
      clock,
      log,
    });
    informers.push(leaseInformer);
    const events = recordEvents(leaseInformer, leaseLine);
    leaseInformer.start();
    await leaseInformer.synced();
    await waitFor('the watch to run', () => lines.some((l) => l.msg === 'Listed objects') && clock.delays.length >= 2);

    const before = clock.delays.length;
    await plane.stopApiServer();
    await waitFor(
      'a few failed restarts',
      () => lines.filter((l) => l.msg === 'The watch failed; restarting it').length >= 4,
    );
    // Delays past the watch's own timeout are its watchdog, not restarts.
    const restarts = clock.delays.slice(before).filter((ms) => ms < 60_000 && ms > 0);
    await plane.startApiServer();

    const expected = restarts.map((_, failures) => Math.min(800, 100 * 2 ** failures));
    assert.deepEqual(restarts, expected);
    assert.ok(restarts.length >= 4, `only ${restarts.length} restarts`);

    await leases.delete('a');
    await leases.patch('b', { spec: { epoch: 2 } });
    await leases.create('c');
    await waitFor('the changes made after the API server returned', () =>
      ['delete a@1', 'update b@1 -> b@2', 'add c@1'].every((e) => events.includes(e)),
    );
    assert.deepEqual(names(leaseInformer.list()), ['b', 'c']);
  });

  test('relists when its resourceVersion expired and reports what changed meanwhile, deletes included', async () => {
    const leases = new Leases(config, await namespace('relist'));
    await leases.create('a');
    await leases.create('b');
    const clock = new RecordingClock();
    const { log, lines } = capturingLogger();
    const leaseInformer = new Informer<StreamLease>(config, {
      resource: streamLeaseResource,
      namespace: leases.namespace,
      initialBackoffMs: 100,
      clock,
      log,
    });
    informers.push(leaseInformer);
    const events = recordEvents(leaseInformer, leaseLine);
    leaseInformer.start();
    await leaseInformer.synced();
    await waitFor('the watch to run', () => clock.delays.length >= 2);

    // A write elsewhere moves etcd's revision past the informer's; a restarted API server
    // starts its watch cache there, so a watch from the informer's revision has expired.
    await config
      .makeApiClient(CoreV1Api)
      .createNamespacedConfigMap({ namespace: leases.namespace, body: { metadata: { name: 'elsewhere' } } });
    clock.hold();
    await plane.stopApiServer();
    await waitFor('the broken watch to want a restart', () => clock.heldCount > 0);
    await plane.startApiServer();
    // The informer is blind now: these changes reach it only through a relist.
    await leases.delete('a');
    await leases.patch('b', { spec: { epoch: 2 } });
    await leases.create('c');
    assert.deepEqual(events, ['add a@1', 'add b@1']);
    clock.release();

    await waitFor('the differences the relist found', () =>
      ['delete a@1', 'update b@1 -> b@2', 'add c@1'].every((e) => events.includes(e)),
    );
    assert.ok(lines.some((l) => l.msg === 'The resourceVersion expired; relisting'));
    assert.deepEqual(names(leaseInformer.list()), ['b', 'c']);
    assert.equal(leaseInformer.get(leases.namespace, 'b')?.spec.epoch, 2);

    // And it watches again from the relist's resourceVersion.
    await leases.delete('c');
    await waitFor('the delete of c', () => events.includes('delete c@1'));
  });
});
