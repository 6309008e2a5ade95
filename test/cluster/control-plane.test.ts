/**
 * The control plane behaves like a cluster's: the pinned version, the garbage
 * collector, namespace lifecycle, service accounts with tokens under RBAC; and the
 * harness leaves no process or directory behind, even when its owner is killed.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import {
  AdmissionregistrationV1Api,
  ApiException,
  AuthenticationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  RbacAuthorizationV1Api,
  VersionApi,
} from '@kubernetes/client-node';
import { streamLeaseResource } from '../../crds/api/index.js';
import { startScript } from '../support/script.js';
import { processExists, waitFor } from '../support/wait.js';
import { ControlPlane } from './control-plane.js';
import { CertificateAuthority } from './pki.js';
import { repoRoot } from './process.js';
import { type TestCluster, testCluster, testNamespace } from './test-cluster.js';

let cluster: TestCluster;
let core: CoreV1Api;
let objects: CustomObjectsApi;

before(async () => {
  cluster = await testCluster();
  core = cluster.kubeConfig().makeApiClient(CoreV1Api);
  objects = cluster.kubeConfig().makeApiClient(CustomObjectsApi);
});

async function notFound(read: () => Promise<unknown>): Promise<boolean> {
  try {
    await read();
    return false;
  } catch (error) {
    if (error instanceof ApiException && error.code === 404) return true;
    throw error;
  }
}

async function podWithLease(namespace: string, name: string) {
  await waitFor('the default service account', () => core.readNamespacedServiceAccount({ name: 'default', namespace }));
  const pod = await core.createNamespacedPod({
    namespace,
    body: {
      metadata: { name, labels: { app: 'voicebot' } },
      spec: { containers: [{ name: 'app', image: 'voicebot:1' }] },
    },
  });
  const { group, version, plural, apiVersion, kind } = streamLeaseResource;
  const lease = {
    apiVersion,
    kind,
    metadata: {
      name: `flux-${name}`,
      ownerReferences: [
        { apiVersion: 'v1', kind: 'Pod', name, uid: pod.metadata?.uid as string, blockOwnerDeletion: true },
      ],
    },
    spec: { budgetName: 'flux', podName: name, podUID: pod.metadata?.uid, grant: { concurrency: 1 }, epoch: 0 },
  };
  await objects.createNamespacedCustomObject({ group, version, plural, namespace, body: lease });
  const readLease = () =>
    objects.getNamespacedCustomObject({ group, version, plural, namespace, name: `flux-${name}` });
  return { readLease };
}

describe('the control plane', () => {
  test('reports the pinned Kubernetes version, matched by kubectl', async () => {
    const info = await cluster.kubeConfig().makeApiClient(VersionApi).getCode();
    const goMod = readFileSync(join(repoRoot, 'test', 'cluster', 'k8s', 'go.mod'), 'utf8');
    const pinned = /\tk8s\.io\/kubernetes (v\d+\.\d+\.\d+)/.exec(goMod)?.[1];
    assert.equal(info.gitVersion, pinned);
    const client = await cluster.kubectl(['version', '--client', '-o', 'json']);
    const minor = JSON.parse(client.stdout).clientVersion.minor;
    assert.equal(minor, info.minor);
  });

  test('garbage-collects a lease when its pod is deleted', async () => {
    const namespace = await testNamespace('gc');
    const { readLease } = await podWithLease(namespace, 'voicebot-0');
    assert.ok(await readLease());
    await core.deleteNamespacedPod({ namespace, name: 'voicebot-0' });
    await waitFor('the lease to be collected', () => notFound(readLease));
  });

  test('deletes a lease before its pod under foreground deletion', async () => {
    const namespace = await testNamespace('gc-fg');
    const { readLease } = await podWithLease(namespace, 'voicebot-1');
    await core.deleteNamespacedPod({ namespace, name: 'voicebot-1', propagationPolicy: 'Foreground' });
    await waitFor('the lease to be collected', () => notFound(readLease));
    await waitFor('the pod to go', () => notFound(() => core.readNamespacedPod({ namespace, name: 'voicebot-1' })));
  });

  test('removes a namespace with everything in it', async () => {
    const namespace = await testNamespace('lifecycle');
    const { readLease } = await podWithLease(namespace, 'voicebot-2');
    await core.deleteNamespace({ name: namespace });
    await waitFor('the namespace to go', () => notFound(() => core.readNamespace({ name: namespace })), {
      timeoutMs: 60_000,
    });
    assert.ok(await notFound(readLease));
  });

  test('issues service-account tokens that RBAC governs', async () => {
    const namespace = await testNamespace('rbac');
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'sidecar' } } });
    const issued = await core.createNamespacedServiceAccountToken({
      namespace,
      name: 'sidecar',
      body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    const token = issued.status?.token as string;
    const config = new KubeConfig();
    const admin = cluster.kubeConfig();
    const server = admin.getCurrentCluster();
    config.loadFromOptions({
      clusters: [server as NonNullable<typeof server>],
      users: [{ name: 'sidecar', token }],
      contexts: [{ name: 'sidecar', cluster: server?.name as string, user: 'sidecar' }],
      currentContext: 'sidecar',
    });
    const review = await config.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: {} });
    assert.equal(review.status?.userInfo?.username, `system:serviceaccount:${namespace}:sidecar`);

    const { group, version, plural } = streamLeaseResource;
    const list = () =>
      config.makeApiClient(CustomObjectsApi).listNamespacedCustomObject({ group, version, plural, namespace });
    await assert.rejects(list, (error: unknown) => error instanceof ApiException && error.code === 403);

    const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace,
      body: {
        metadata: { name: 'read-leases' },
        rules: [{ apiGroups: [group], resources: [plural], verbs: ['list'] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: 'read-leases' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'read-leases' },
        subjects: [{ kind: 'ServiceAccount', name: 'sidecar', namespace }],
      },
    });
    await waitFor('the role binding to take effect', () => list().then(() => true));
  });

  test('calls admission webhooks served on loopback', async () => {
    const namespace = await testNamespace('webhook');
    const ca = await CertificateAuthority.create('webhook-ca');
    const serving = await ca.serving('webhook', { ips: ['127.0.0.1'] });
    const reviewed: string[] = [];
    const server = createServer({ cert: serving.certificate, key: serving.privateKey }, (req, res) => {
      let body = '';
      req.on('data', (chunk) => {
        body += chunk;
      });
      req.on('end', () => {
        const review = JSON.parse(body);
        reviewed.push(review.request.name);
        const allowed = !String(review.request.name).startsWith('forbidden');
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            apiVersion: 'admission.k8s.io/v1',
            kind: 'AdmissionReview',
            response: {
              uid: review.request.uid,
              allowed,
              status: { message: 'names starting with forbidden are refused' },
            },
          }),
        );
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as { port: number };
    const admission = cluster.kubeConfig().makeApiClient(AdmissionregistrationV1Api);
    const name = `${namespace}.sluice.dev`;
    try {
      await admission.createValidatingWebhookConfiguration({
        body: {
          metadata: { name },
          webhooks: [
            {
              name,
              admissionReviewVersions: ['v1'],
              sideEffects: 'None',
              failurePolicy: 'Fail',
              clientConfig: {
                url: `https://127.0.0.1:${port}/validate`,
                caBundle: Buffer.from(ca.certificate).toString('base64'),
              },
              namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } },
              rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['configmaps'] }],
            },
          ],
        },
      });
      const create = (configMap: string) =>
        core.createNamespacedConfigMap({ namespace, body: { metadata: { name: configMap } } });
      // The configuration takes effect once the API server's informer has seen it.
      await waitFor('the webhook to be called', async () => {
        await create(`allowed-${reviewed.length}`);
        return reviewed.length > 0;
      });
      await assert.rejects(
        create('forbidden-1'),
        (error: unknown) =>
          error instanceof ApiException && error.code === 400 && String(error.body).includes('are refused'),
      );
    } finally {
      await admission.deleteValidatingWebhookConfiguration({ name }).catch(() => undefined);
      server.close();
    }
  });
});

describe('the harness', () => {
  test('stops every process and removes its directory', async () => {
    const root = mkdtempSync(join(tmpdir(), 'sluice-harness-'));
    try {
      const plane = await ControlPlane.start({ tmpRoot: root });
      const { pids, dir } = plane;
      try {
        assert.equal(pids.length, 3);
        assert.ok(existsSync(dir));
      } finally {
        await plane.stop();
      }
      assert.deepEqual(pids.filter(processExists), []);
      assert.deepEqual(readdirSync(root), []);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('cleans up after an owner killed with SIGKILL', async (t) => {
    const root = mkdtempSync(join(tmpdir(), 'sluice-harness-'));
    try {
      const owner = startScript('test/cluster/fixtures/hold-control-plane.ts', [root]);
      t.after(() => owner.stop());
      const started = await waitFor(
        'the owner to start its control plane',
        () => /^\{.*\}$/m.exec(owner.output())?.[0],
        { timeoutMs: 60_000 },
      );
      const { pids, dir } = JSON.parse(started) as { pids: number[]; dir: string };
      assert.equal(pids.length, 3);
      owner.child.kill('SIGKILL');
      await waitFor('every process to stop', () => pids.every((pid) => !processExists(pid)), { timeoutMs: 20_000 });
      await waitFor('the directory to go', () => !existsSync(dir), { timeoutMs: 5_000 });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
