/**
 * Against a real API server over TLS: the clients the operator and the sidecar make
 * (PooledKubeConfig) keep one connection, where the library alone opens one per call, and
 * every call on it still carries the caller's credentials.
 */
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { AuthenticationV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { PooledKubeConfig } from '../../crds/kube/pooled-kube-config.js';
import { serviceAccountKubeconfig } from './service-accounts.js';
import { testCluster, testNamespace } from './test-cluster.js';

/** Counts TLS connections opened while `calls` runs. */
async function tlsConnections(calls: () => Promise<void>): Promise<number> {
  const connect = tls.connect;
  let opened = 0;
  tls.connect = ((...args: Parameters<typeof tls.connect>) => {
    opened += 1;
    return connect(...args);
  }) as typeof tls.connect;
  try {
    await calls();
  } finally {
    tls.connect = connect;
  }
  return opened;
}

/** Who the API server takes the caller of a generated client for. */
async function whoAmI(config: KubeConfig): Promise<string | undefined> {
  const review = await config.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: {} });
  return review.status?.userInfo?.username;
}

/** The same question as a plain HTTPS request made with the config, as the informers make their lists. */
async function whoAmIPlainly(config: KubeConfig): Promise<string | undefined> {
  const options: Parameters<typeof request>[1] = { method: 'POST', headers: { 'content-type': 'application/json' } };
  await config.applyToHTTPSOptions(options);
  const url = `${config.getCurrentCluster()?.server}/apis/authentication.k8s.io/v1/selfsubjectreviews`;
  const body = await new Promise<string>((resolve, reject) => {
    const req = request(url, options, (res) => {
      let text = '';
      res.on('data', (chunk) => {
        text += chunk;
      });
      res.on('end', () => resolve(text));
    });
    req.on('error', reject);
    req.end(JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' }));
  });
  return (JSON.parse(body) as { status?: { userInfo?: { username?: string } } }).status?.userInfo?.username;
}

describe('connections to the API server', () => {
  let admin: KubeConfig;
  let tokenConfig: KubeConfig;
  let serviceAccount: string;

  before(async () => {
    admin = (await testCluster()).kubeConfig();
    const namespace = await testNamespace('connections');
    await admin
      .makeApiClient(CoreV1Api)
      .createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'caller' } } });
    serviceAccount = `system:serviceaccount:${namespace}:caller`;
    // A token goes in a header on each request, unlike a client certificate, which the connection carries.
    tokenConfig = new KubeConfig();
    tokenConfig.loadFromString(await serviceAccountKubeconfig(admin, namespace, 'caller'));
  });

  test('API calls share one TLS connection to the API server, where the library alone opens one per call', async () => {
    const plain = admin.makeApiClient(CoreV1Api);
    const alone = await tlsConnections(async () => {
      for (let i = 0; i < 5; i++) await plain.listNamespace();
    });
    assert.equal(alone, 5);

    const pooled = PooledKubeConfig.from(admin);
    after(() => pooled.close());
    const api = pooled.makeApiClient(CoreV1Api);
    const kept = await tlsConnections(async () => {
      for (let i = 0; i < 5; i++) await api.listNamespace();
    });
    assert.equal(kept, 1);
  });

  test('every call on the kept connection is authenticated as the caller, generated clients and plain requests alike', async () => {
    const pooled = PooledKubeConfig.from(tokenConfig);
    after(() => pooled.close());
    const seen: (string | undefined)[] = [];
    const opened = await tlsConnections(async () => {
      for (let i = 0; i < 3; i++) seen.push(await whoAmI(pooled));
      for (let i = 0; i < 2; i++) seen.push(await whoAmIPlainly(pooled));
    });
    assert.equal(opened, 1);
    assert.deepEqual(seen, Array(5).fill(serviceAccount));
  });

  test('close() ends the kept connections; later calls open a new one', async () => {
    const pooled = PooledKubeConfig.from(tokenConfig);
    after(() => pooled.close());
    const opened = await tlsConnections(async () => {
      assert.equal(await whoAmI(pooled), serviceAccount);
      pooled.close();
      assert.equal(await whoAmI(pooled), serviceAccount);
      assert.equal(await whoAmIPlainly(pooled), serviceAccount);
    });
    assert.equal(opened, 2);
  });
});
