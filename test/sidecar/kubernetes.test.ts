/**
 * The sidecar in Kubernetes mode, as a real process against the real control plane,
 * with the credentials a pod would have: the ServiceAccount and binding of sidecar/rbac.yaml.
 * The test plays the operator with admin credentials, writing lease specs by hand, and
 * checks the lease protocol from the sidecar's side: no lease, no streams; grants
 * acknowledged in one write and enforced; heartbeats, with the streams the upstream refused
 * and those the sidecar reaped; a restart that remembers; a fence when the API server is
 * away; and a Role that is enough and no more.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import type { StreamLease } from '../../crds/api/index.js';
import {
  budgetLabel,
  labelValue,
  leaseName,
  operatorManager,
  podUidLabel,
  slotsHeldFinalizer,
} from '../../crds/api/lease-protocol.js';
import { readSidecarConfig, SidecarConfigError } from '../../sidecar/config.js';
import { ControlPlane } from '../cluster/control-plane.js';
import { crdManifests } from '../cluster/crds.js';
import { applyRbac, serviceAccountKubeconfig, serviceAccountOf, shippedRbac } from '../cluster/service-accounts.js';
import { testCluster, testNamespace } from '../cluster/test-cluster.js';
import { Emulator } from '../emulator/server.js';
import { loggedLine, type Script, startScript } from '../support/script.js';
import { type OpenedStream, openStream, refusedHandshake, sendAudio } from '../support/stream-client.js';
import { waitFor } from '../support/wait.js';
import { auth, fluxPath } from './fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'sluice-sidecar-k8s-'));
const cleanups: (() => Promise<unknown> | unknown)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const group = { group: 'sluice.dev', version: 'v1alpha1' };
const leases = { ...group, plural: 'streamleases' };
const budgets = { ...group, plural: 'streambudgets' };
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const podName = 'voicebot-0';
/** A key the emulator does not know: it refuses the handshake with 401. */
const unknownKey = { headers: { authorization: 'Token not-a-key' } };

/** One pod's world: namespace, service account and Role, the Pod, a budget, an emulator, and the sidecar's kubeconfig. */
interface World {
  namespace: string;
  podUID: string;
  budgetName: string;
  lease: string;
  /** The sidecar's kubeconfig: the service account's token. */
  kubeconfigPath: string;
  admin: { custom: CustomObjectsApi; core: CoreV1Api };
  sidecarConfig: KubeConfig;
  emulator: Emulator;
}

async function createWorld(admin: KubeConfig, namespace: string, spec: Record<string, unknown> = {}): Promise<World> {
  const core = admin.makeApiClient(CoreV1Api);
  const custom = admin.makeApiClient(CustomObjectsApi);

  // The ServiceAccount, Role and RoleBinding the project ships, as `kubectl apply -n` puts them.
  const rbac = shippedRbac('sidecar/rbac.yaml', namespace);
  await applyRbac(admin, rbac);
  const serviceAccount = serviceAccountOf(rbac);
  const kubeconfigPath = join(dir, `${namespace}.kubeconfig`);
  writeFileSync(kubeconfigPath, await serviceAccountKubeconfig(admin, namespace, serviceAccount), { mode: 0o600 });

  // No kubelet: the pod stays Pending, which is all the sidecar needs of it.
  const pod = await core.createNamespacedPod({
    namespace,
    body: {
      metadata: { name: podName, labels: { app: 'voicebot' } },
      spec: { serviceAccountName: serviceAccount, containers: [{ name: 'app', image: 'registry.invalid/app:1' }] },
    },
  });

  const emulator = await Emulator.start({
    projects: [{ id: 'p', keys: ['emulator-key'], maxConcurrentStreams: 100, releaseDelaySeconds: 1 }],
    flux: { idleTimeoutSeconds: 600 },
  });
  cleanups.push(() => emulator.close());

  const budgetName = 'flux';
  await custom.createNamespacedCustomObject({
    ...budgets,
    namespace,
    body: {
      apiVersion: 'sluice.dev/v1alpha1',
      kind: 'StreamBudget',
      metadata: { name: budgetName },
      spec: {
        projectId: 'p',
        upstream: emulator.url,
        match: { paths: ['/v2/listen'] },
        podSelector: { matchLabels: { app: 'voicebot' } },
        maxConcurrentStreams: 10,
        // The CRD's minimum lease is 2 s; 3 s keeps the test quick and the timings sane.
        allocation: { leaseDurationSeconds: 3 },
        admission: { queueTimeoutMs: 0 },
        reaping: { idleTimeoutSeconds: 600, upstreamReleaseDelaySeconds: 2 },
        ...spec,
      },
    },
  });
  const podUID = pod.metadata?.uid as string;
  const sidecarConfig = new KubeConfig();
  sidecarConfig.loadFromFile(kubeconfigPath);
  return {
    namespace,
    podUID,
    budgetName,
    lease: leaseName(budgetName, podName, podUID),
    kubeconfigPath,
    admin: { custom, core },
    sidecarConfig,
    emulator,
  };
}

/** The operator's part: create the pod's lease for the budget with a grant. */
async function writeLease(
  world: World,
  grant: { concurrency: number; newSessionsPerMinute?: number },
  epoch: number,
  extra: { finalizers?: string[] } = {},
): Promise<void> {
  await world.admin.custom.createNamespacedCustomObject({
    ...leases,
    namespace: world.namespace,
    fieldManager: operatorManager,
    body: {
      apiVersion: 'sluice.dev/v1alpha1',
      kind: 'StreamLease',
      metadata: {
        name: world.lease,
        labels: { [podUidLabel]: world.podUID, [budgetLabel]: labelValue(world.budgetName) },
        ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: podName, uid: world.podUID }],
        ...extra,
      },
      spec: { budgetName: world.budgetName, podName, podUID: world.podUID, grant, epoch },
    },
  });
}

/** The operator's part: a new grant, with the next epoch. */
async function changeGrant(world: World, concurrency: number, epoch: number): Promise<void> {
  await world.admin.custom.patchNamespacedCustomObject(
    {
      ...leases,
      namespace: world.namespace,
      name: world.lease,
      fieldManager: operatorManager,
      body: { spec: { grant: { concurrency }, epoch } },
    },
    mergePatch,
  );
}

async function readLease(world: World): Promise<StreamLease> {
  return (await world.admin.custom.getNamespacedCustomObject({
    ...leases,
    namespace: world.namespace,
    name: world.lease,
  })) as StreamLease;
}

/** Waits until the sidecar acknowledged `epoch` with `concurrency`, and returns the lease. */
function acknowledged(world: World, epoch: number, concurrency: number): Promise<StreamLease> {
  return waitFor(`the sidecar to acknowledge epoch ${epoch} with a grant of ${concurrency}`, async () => {
    const lease = await readLease(world);
    return lease.status?.observedEpoch === epoch && lease.status.grant?.concurrency === concurrency ? lease : undefined;
  });
}

interface RunningSidecar {
  script: Script;
  url: string;
  admin: string;
}

/** Starts sluice-sidecar as a pod would run it, and waits until it listens. */
async function startSidecar(world: World): Promise<RunningSidecar> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.SLUICE_BUDGET_FILE;
  const script = startScript('sidecar/main.ts', [], {
    ...env,
    KUBECONFIG: world.kubeconfigPath,
    POD_NAME: podName,
    POD_NAMESPACE: world.namespace,
    POD_UID: world.podUID,
    SLUICE_LISTEN: '127.0.0.1:0',
    SLUICE_ADMIN_LISTEN: '127.0.0.1:0',
    SLUICE_SHUTDOWN_GRACE_SECONDS: '0',
    SLUICE_CLOSE_TIMEOUT_MS: '1000',
  });
  cleanups.push(() => script.stop());
  // DUMP_SIDECAR=1 prints each sidecar's log once the file's tests are done.
  cleanups.push(() => process.env.DUMP_SIDECAR && console.error(script.output()));
  const line = await loggedLine<{ proxy: string; admin: string }>(script, 'Started sidecar');
  return {
    script,
    url: `ws://${line.proxy}`,
    admin: `http://${line.admin}`,
  };
}

/** A per-budget gauge from /metrics. */
async function gauge(sidecar: RunningSidecar, name: string, budget: string): Promise<number | undefined> {
  const text = await (await fetch(`${sidecar.admin}/metrics`)).text();
  const match = new RegExp(`^${name}\\{budget="${budget}"\\} (\\S+)$`, 'm').exec(text);
  return match ? Number(match[1]) : undefined;
}

/** Proves a stream is alive end to end: audio up, a message back. */
/** Waits until the sidecar's fence on the world's budget has lifted (a status write of its own succeeded). */
async function unfenced(world: World, sidecar: RunningSidecar): Promise<void> {
  await waitFor(
    'the fence to lift',
    async () => (await gauge(sidecar, 'sluice_sidecar_fenced', `${world.namespace}/flux`)) === 0,
  );
}

/** The operator grants `concurrency` at epoch 1; resolves once the sidecar acknowledged it and is unfenced. */
async function granted(
  world: World,
  sidecar: RunningSidecar,
  concurrency: number,
  extra: { finalizers?: string[] } = {},
): Promise<void> {
  await writeLease(world, { concurrency }, 1, extra);
  await acknowledged(world, 1, concurrency);
  await unfenced(world, sidecar);
}

async function alive(stream: OpenedStream): Promise<void> {
  const before = stream.messages.length;
  sendAudio(stream.ws, 0.5);
  await stream.received(before + 1);
}

async function refusal(sidecar: RunningSidecar): Promise<{ status: number; reason: unknown }> {
  const refused = await refusedHandshake(`${sidecar.url}${fluxPath}`, auth);
  return { status: refused.status, reason: refused.headers['x-sluice-reason'] };
}

function forbiddenLines(sidecar: RunningSidecar): string[] {
  return sidecar.script
    .output()
    .split('\n')
    .filter((l) => /"code":403|Forbidden/.test(l));
}

async function world(spec: Record<string, unknown> = {}): Promise<World> {
  const cluster = await testCluster();
  return createWorld(cluster.kubeConfig(), await testNamespace('sidecar-k8s'), spec);
}

describe('configuration', () => {
  const pod = { POD_NAME: podName, POD_NAMESPACE: 'voice', POD_UID: '6f1c2a34-0000-4000-8000-000000000001' };

  test('the pod variables alone select Kubernetes mode; the budget file alone, standalone', () => {
    const kubernetes = readSidecarConfig(pod);
    assert.equal(kubernetes.mode, 'kubernetes');
    assert.deepEqual(kubernetes.pod, { name: podName, namespace: 'voice', uid: pod.POD_UID });
    const standalone = readSidecarConfig({ SLUICE_BUDGET_FILE: 'budgets.yaml' });
    assert.equal(standalone.mode, 'standalone');
    assert.equal(standalone.pod, undefined);
  });

  test('both modes at once, some of the pod variables, or neither mode is refused', () => {
    const problems = (env: Record<string, string>) => {
      try {
        readSidecarConfig(env);
      } catch (error) {
        if (error instanceof SidecarConfigError) return error.problems.join('\n');
        throw error;
      }
      return '';
    };
    assert.match(problems({ ...pod, SLUICE_BUDGET_FILE: 'b.yaml' }), /SLUICE_BUDGET_FILE: cannot be combined/);
    assert.match(problems({ POD_NAME: podName }), /^POD_NAMESPACE, POD_UID: are required with POD_NAME/);
    assert.match(problems({ POD_NAME: podName, POD_NAMESPACE: 'voice' }), /^POD_UID: is required/);
    assert.match(problems({}), /SLUICE_BUDGET_FILE: is required/);
  });

  test('the process exits 2 on a mixed configuration', async () => {
    const script = startScript('sidecar/main.ts', [], { ...process.env, POD_NAME: podName });
    cleanups.push(() => script.stop());
    assert.equal(await script.exited, 2);
    assert.match(script.output(), /POD_NAMESPACE, POD_UID: are required/);
  });
});

describe('the sidecar in Kubernetes mode', () => {
  test('refuses streams with no-grant until its pod holds a lease, and is ready once it has listed', async () => {
    const w = await world();
    const sidecar = await startSidecar(w);
    await waitFor('/readyz to answer 200', async () => (await fetch(`${sidecar.admin}/readyz`)).status === 200);
    assert.deepEqual(await refusal(sidecar), { status: 429, reason: 'no-grant' });
    assert.equal(w.emulator.stats().projects.p?.accepted, 0, 'nothing reached the upstream');
    assert.deepEqual(forbiddenLines(sidecar), []);
  });

  test('acknowledges a grant in one status write and admits up to it', async () => {
    const w = await world();
    const sidecar = await startSidecar(w);
    await writeLease(w, { concurrency: 2 }, 1);
    const lease = await acknowledged(w, 1, 2);
    assert.equal(lease.status?.inUse, 0);
    assert.match(lease.status?.heartbeatTime ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const managers = (lease.metadata?.managedFields ?? []).filter((f) => f.subresource === 'status');
    assert.deepEqual(
      managers.map((f) => [f.manager, f.operation]),
      [['sluice-sidecar', 'Update']],
      'status is written by the sidecar alone, as merge patches',
    );

    await unfenced(w, sidecar);
    const streams = [
      await openStream(`${sidecar.url}${fluxPath}`, auth),
      await openStream(`${sidecar.url}${fluxPath}`, auth),
    ];
    assert.deepEqual(await refusal(sidecar), { status: 429, reason: 'concurrency' });
    for (const s of streams) await alive(s);
    assert.equal(await gauge(sidecar, 'sluice_sidecar_grant_epoch', `${w.namespace}/flux`), 1);
    for (const s of streams) s.ws.close();
    assert.deepEqual(forbiddenLines(sidecar), []);
  });

  test('a raised grant is acknowledged and used; a lowered one ends no stream', async () => {
    const w = await world();
    const sidecar = await startSidecar(w);
    await granted(w, sidecar, 1);
    const streams = [await openStream(`${sidecar.url}${fluxPath}`, auth)];
    assert.deepEqual(await refusal(sidecar), { status: 429, reason: 'concurrency' });

    await changeGrant(w, 3, 2);
    const raised = await acknowledged(w, 2, 3);
    assert.ok((raised.status?.inUse ?? -1) >= 1, 'the ack carries the usage measured after the grant');
    streams.push(await openStream(`${sidecar.url}${fluxPath}`, auth));
    streams.push(await openStream(`${sidecar.url}${fluxPath}`, auth));
    assert.deepEqual(await refusal(sidecar), { status: 429, reason: 'concurrency' });

    await changeGrant(w, 1, 3);
    const lowered = await acknowledged(w, 3, 1);
    assert.equal(lowered.status?.inUse, 3, 'the three streams still count');
    for (const s of streams) await alive(s);
    assert.deepEqual(await refusal(sidecar), { status: 429, reason: 'concurrency' });
    // Under the grant again only once two have ended.
    (streams.shift() as OpenedStream).ws.close();
    (streams.shift() as OpenedStream).ws.close();
    await waitFor('usage to fall to the grant', async () => (await readLease(w)).status?.inUse === 1);
    assert.deepEqual(await refusal(sidecar), { status: 429, reason: 'concurrency' });
    (streams.shift() as OpenedStream).ws.close();
    await waitFor('usage to fall to 0', async () => (await readLease(w)).status?.inUse === 0);
    const again = await openStream(`${sidecar.url}${fluxPath}`, auth);
    again.ws.close();
  });

  test('heartbeats report usage, and keep coming when nothing changes', async () => {
    const w = await world();
    const sidecar = await startSidecar(w);
    await granted(w, sidecar, 2);
    const stream = await openStream(`${sidecar.url}${fluxPath}`, auth);
    const busy = await waitFor('a heartbeat with the open stream', async () => {
      const lease = await readLease(w);
      return lease.status?.inUse === 1 ? lease : undefined;
    });
    assert.equal(busy.status?.admittedTotal, 1);
    assert.ok((busy.status?.demand ?? 0) >= 1);
    assert.equal(busy.status?.sessionsLastMinute, 1);
    const second = await openStream(`${sidecar.url}${fluxPath}`, auth);
    assert.deepEqual(await refusal(sidecar), { status: 429, reason: 'concurrency' });
    await waitFor('a heartbeat with the rejection counted', async () => {
      const lease = await readLease(w);
      return lease.status?.rejectedTotal === 1 && lease.status.demand === 3;
    });
    stream.ws.close();
    second.ws.close();
    const idle = await waitFor('a heartbeat after the stream ended', async () => {
      const lease = await readLease(w);
      return lease.status?.inUse === 0 ? lease : undefined;
    });
    await waitFor('a plain heartbeat with nothing new', async () => {
      const lease = await readLease(w);
      return lease.status?.heartbeatTime !== idle.status?.heartbeatTime;
    });
  });

  test('handshakes the upstream refuses are reported in upstreamRejectedTotal', async () => {
    const w = await world();
    const sidecar = await startSidecar(w);
    await granted(w, sidecar, 2);
    assert.equal((await refusedHandshake(`${sidecar.url}${fluxPath}`, unknownKey)).status, 401);
    const first = await waitFor('a heartbeat with the refusal', async () => {
      const lease = await readLease(w);
      return lease.status?.upstreamRejectedTotal === 1 ? lease : undefined;
    });
    assert.equal(first.status?.rejectedTotal, 0, 'refused upstream, not by the sidecar');
    assert.equal(first.status?.reapedTotal, 0);

    w.emulator.addFault({ id: 'busy', match: { project: 'p' }, action: { type: 'status', status: 429 }, remaining: 1 });
    const busy = await refusedHandshake(`${sidecar.url}${fluxPath}`, auth);
    assert.equal(busy.status, 429);
    assert.equal(busy.headers['x-sluice-reason'], undefined, "the upstream's 429, not the sidecar's");
    await waitFor('a heartbeat with the second refusal', async () => {
      const status = (await readLease(w)).status;
      return status?.upstreamRejectedTotal === 2 && status.rejectedTotal === 0 && status.inUse === 0;
    });
  });

  test('a stream it ends for idling is reported in reapedTotal', async () => {
    const w = await world({ reaping: { idleTimeoutSeconds: 1, upstreamReleaseDelaySeconds: 2 } });
    const sidecar = await startSidecar(w);
    await granted(w, sidecar, 1);
    // The client sends nothing: the sidecar ends the stream after a second.
    const stream = await openStream(`${sidecar.url}${fluxPath}`, auth);
    assert.equal((await stream.closed).code, 1000);
    const lease = await waitFor('a heartbeat with the reaped stream', async () => {
      const found = await readLease(w);
      return found.status?.reapedTotal === 1 && found.status.inUse === 0 ? found : undefined;
    });
    assert.equal(lease.status?.admittedTotal, 1);
    assert.equal(lease.status?.upstreamRejectedTotal, 0);
  });

  test('a lease being deleted, or a pod no longer selected, gets no grant but reports usage until it is 0', async () => {
    const w = await world();
    const sidecar = await startSidecar(w);
    await granted(w, sidecar, 2, { finalizers: [slotsHeldFinalizer] });
    const stream = await openStream(`${sidecar.url}${fluxPath}`, auth);

    // The pod loses the label the budget selects: no grant, the open stream runs on.
    await w.admin.core.patchNamespacedPod(
      { name: podName, namespace: w.namespace, body: { metadata: { labels: { app: 'other' } } } },
      mergePatch,
    );
    await waitFor('the sidecar to report no grant', async () => (await readLease(w)).status?.grant?.concurrency === 0);
    assert.deepEqual(await refusal(sidecar), { status: 429, reason: 'no-grant' });
    await alive(stream);
    await w.admin.core.patchNamespacedPod(
      { name: podName, namespace: w.namespace, body: { metadata: { labels: { app: 'voicebot' } } } },
      mergePatch,
    );
    await waitFor('the grant to return', async () => (await readLease(w)).status?.grant?.concurrency === 2);

    // The operator deletes the lease; its finalizer keeps it while slots are held.
    await w.admin.custom.deleteNamespacedCustomObject({ ...leases, namespace: w.namespace, name: w.lease });
    await waitFor('the sidecar to report no grant', async () => (await readLease(w)).status?.grant?.concurrency === 0);
    assert.deepEqual(await refusal(sidecar), { status: 429, reason: 'no-grant' });
    assert.equal((await readLease(w)).status?.inUse, 1);
    stream.ws.close();
    await waitFor('usage to reach 0', async () => (await readLease(w)).status?.inUse === 0);
    await w.admin.custom.patchNamespacedCustomObject(
      { ...leases, namespace: w.namespace, name: w.lease, body: { metadata: { finalizers: null } } },
      mergePatch,
    );
    await waitFor(
      'the budget to stay enforced without its lease',
      async () => (await refusal(sidecar)).reason === 'no-grant',
    );
    assert.deepEqual(forbiddenLines(sidecar), []);
  });

  test('budgets come and go while it runs', async () => {
    const w = await world();
    const sidecar = await startSidecar(w);
    await waitFor('/readyz to answer 200', async () => (await fetch(`${sidecar.admin}/readyz`)).status === 200);
    const nova = '/v1/listen?model=nova-3&encoding=linear16&sample_rate=16000';
    const refusedNova = await refusedHandshake(`${sidecar.url}${nova}`, auth);
    assert.equal(refusedNova.status, 403, 'no budget covers /v1/listen yet');
    await w.admin.custom.createNamespacedCustomObject({
      ...budgets,
      namespace: w.namespace,
      body: {
        apiVersion: 'sluice.dev/v1alpha1',
        kind: 'StreamBudget',
        metadata: { name: 'nova' },
        spec: {
          projectId: 'p',
          upstream: w.emulator.url,
          match: { paths: ['/v1/listen'] },
          podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['voicebot'] }] },
          maxConcurrentStreams: 5,
          allocation: { leaseDurationSeconds: 3 },
          admission: { queueTimeoutMs: 0 },
        },
      },
    });
    await waitFor('the new budget to be enforced, without a grant yet', async () => {
      const refused = await refusedHandshake(`${sidecar.url}${nova}`, auth);
      return refused.status === 429 && refused.headers['x-sluice-budget'] === `${w.namespace}/nova`;
    });
    await w.admin.custom.deleteNamespacedCustomObject({ ...budgets, namespace: w.namespace, name: 'nova' });
    await waitFor(
      'the budget to go',
      async () => (await refusedHandshake(`${sidecar.url}${nova}`, auth)).status === 403,
    );
  });

  test('killed with open streams and restarted, it holds all a previous run may have had open as stale slots', async () => {
    // A release delay long enough that a slow machine still sees the held slots.
    const w = await world({ reaping: { idleTimeoutSeconds: 600, upstreamReleaseDelaySeconds: 4 } });
    const first = await startSidecar(w);
    await granted(w, first, 3);
    const streams = [
      await openStream(`${first.url}${fluxPath}`, auth),
      await openStream(`${first.url}${fluxPath}`, auth),
    ];
    assert.equal((await refusedHandshake(`${first.url}${fluxPath}`, unknownKey)).status, 401);
    await waitFor('a heartbeat with both streams and the refusal', async () => {
      const status = (await readLease(w)).status;
      return status?.inUse === 2 && status.upstreamRejectedTotal === 1;
    });
    const pid = first.script.child.pid as number;
    process.kill(-pid, 'SIGKILL');
    await first.script.exited;
    await Promise.all(streams.map((s) => s.closed));

    const second = await startSidecar(w);
    const budget = `${w.namespace}/flux`;
    await waitFor(
      'the restarted sidecar to lift its fence',
      async () => (await gauge(second, 'sluice_sidecar_fenced', budget)) === 0,
    );
    // Two streams were reported, but the first run could have opened up to its grant of
    // three since its last report: all three are held.
    assert.equal(await gauge(second, 'sluice_sidecar_stale_slots', budget), 3, 'the whole grant is held');
    const lease = await readLease(w);
    assert.equal(lease.status?.staleSlots, 3);
    assert.equal(lease.status?.inUse, 3);
    assert.deepEqual(await refusal(second), { status: 429, reason: 'concurrency' }, 'nothing admitted while held');
    await waitFor(
      'the held slots to be released',
      async () => (await gauge(second, 'sluice_sidecar_stale_slots', budget)) === 0,
    );
    assert.equal((await refusedHandshake(`${second.url}${fluxPath}`, unknownKey)).status, 401);
    const one = await openStream(`${second.url}${fluxPath}`, auth);
    const two = await openStream(`${second.url}${fluxPath}`, auth);
    const three = await openStream(`${second.url}${fluxPath}`, auth);
    assert.deepEqual(await refusal(second), { status: 429, reason: 'concurrency' });
    for (const s of [one, two, three]) s.ws.close();
    // The counters continue from the first run: 3 admitted then (the refused handshake
    // too), 4 now; one refusal upstream then, one now.
    await waitFor('the counters of both runs to be added up', async () => {
      const status = (await readLease(w)).status;
      return status?.admittedTotal === 7 && status.upstreamRejectedTotal === 2;
    });
  });

  test('the Role is enough, and no more', async () => {
    const w = await world();
    const sidecar = await startSidecar(w);
    await writeLease(w, { concurrency: 1 }, 1);
    await acknowledged(w, 1, 1);
    assert.deepEqual(forbiddenLines(sidecar), [], 'no request of the sidecar was forbidden');

    const custom = w.sidecarConfig.makeApiClient(CustomObjectsApi);
    const core = w.sidecarConfig.makeApiClient(CoreV1Api);
    const forbidden = async (what: string, call: () => Promise<unknown>) => {
      await assert.rejects(call, (error: unknown) => error instanceof ApiException && error.code === 403, what);
    };
    await forbidden('writing the lease spec', () =>
      custom.patchNamespacedCustomObject(
        { ...leases, namespace: w.namespace, name: w.lease, body: { spec: { grant: { concurrency: 100 } } } },
        mergePatch,
      ),
    );
    await forbidden('creating a lease', () =>
      custom.createNamespacedCustomObject({
        ...leases,
        namespace: w.namespace,
        body: {
          apiVersion: 'sluice.dev/v1alpha1',
          kind: 'StreamLease',
          metadata: { name: 'mine' },
          spec: { budgetName: 'flux', podName, podUID: w.podUID, grant: { concurrency: 100 }, epoch: 0 },
        },
      }),
    );
    await forbidden('deleting a lease', () =>
      custom.deleteNamespacedCustomObject({ ...leases, namespace: w.namespace, name: w.lease }),
    );
    await forbidden('writing a budget', () =>
      custom.patchNamespacedCustomObject(
        { ...budgets, namespace: w.namespace, name: 'flux', body: { spec: { maxConcurrentStreams: 1000 } } },
        mergePatch,
      ),
    );
    await forbidden('reading secrets', () => core.listNamespacedSecret({ namespace: w.namespace }));
    await forbidden('changing the pod', () =>
      core.patchNamespacedPod(
        { name: podName, namespace: w.namespace, body: { metadata: { labels: { app: 'x' } } } },
        mergePatch,
      ),
    );
  });
});

describe('the fence', () => {
  test('with the API server away, it stops admitting after the fence time, keeps open streams, and resumes when it returns', async () => {
    const plane = await ControlPlane.start({ crds: crdManifests });
    cleanups.push(() => plane.stop());
    const admin = plane.kubeConfig();
    const namespace = 'fence';
    await admin.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: namespace } } });
    const w = await createWorld(admin, namespace);
    const sidecar = await startSidecar(w);
    const budget = `${namespace}/flux`;
    await granted(w, sidecar, 2);
    const stream = await openStream(`${sidecar.url}${fluxPath}`, auth);

    await plane.stopApiServer();
    await waitFor(
      'the sidecar to fence itself',
      async () => (await gauge(sidecar, 'sluice_sidecar_fenced', budget)) === 1,
    );
    assert.deepEqual(await refusal(sidecar), { status: 429, reason: 'no-grant' });
    await alive(stream);

    await plane.startApiServer();
    await waitFor(
      'the fence to lift once a write succeeds',
      async () => (await gauge(sidecar, 'sluice_sidecar_fenced', budget)) === 0,
      {
        timeoutMs: 60_000,
      },
    );
    await alive(stream);
    const another = await openStream(`${sidecar.url}${fluxPath}`, auth);
    another.ws.close();
    stream.ws.close();
    assert.equal(sidecar.script.child.exitCode, null, 'the sidecar lived through the outage');
    assert.match(sidecar.script.output(), /"msg":"Fenced budget/);
  });
});
