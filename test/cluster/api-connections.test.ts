/**
 * Against a real API server over TLS: the clients the operator and the sidecar make
 * (PooledKubeConfig) keep one connection, where the library alone opens one per call.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import tls from 'node:tls';
import { CoreV1Api } from '@kubernetes/client-node';
import { PooledKubeConfig } from '../../crds/kube/pooled-kube-config.js';
import { testCluster } from './test-cluster.js';

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

test('API calls share one TLS connection to the API server, where the library alone opens one per call', async () => {
  const admin = (await testCluster()).kubeConfig();
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
