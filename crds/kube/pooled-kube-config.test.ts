import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type RequestOptions, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { PooledKubeConfig } from './pooled-kube-config.js';

/** An API server stand-in that counts connections and remembers each request's credentials. */
let server: Server;
let connections = 0;
let requests: IncomingMessage[] = [];

function kubeConfigFor(token: string): KubeConfig {
  const config = new KubeConfig();
  config.loadFromOptions({
    // Plain HTTP to a loopback stand-in: the library wants that said out loud.
    clusters: [
      { name: 'local', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true },
    ],
    users: [{ name: 'sidecar', token }],
    contexts: [{ name: 'local', cluster: 'local', user: 'sidecar' }],
    currentContext: 'local',
  });
  return config;
}

describe('PooledKubeConfig', () => {
  before(async () => {
    server = createServer((req, res) => {
      requests.push(req);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ kind: 'NamespaceList', apiVersion: 'v1', metadata: {}, items: [] }));
    });
    server.on('connection', () => {
      connections += 1;
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  });
  after(() => server.close());
  beforeEach(() => {
    connections = 0;
    requests = [];
  });

  test('the library alone opens a connection for every call', async () => {
    const api = kubeConfigFor('t0').makeApiClient(CoreV1Api);
    for (let i = 0; i < 3; i++) await api.listNamespace();
    assert.equal(connections, 3);
  });

  test('generated clients reuse one connection and still send the credentials with every call', async () => {
    const config = PooledKubeConfig.from(kubeConfigFor('t1'));
    const api = config.makeApiClient(CoreV1Api);
    for (let i = 0; i < 5; i++) await api.listNamespace();
    assert.equal(connections, 1);
    assert.equal(requests.length, 5);
    for (const req of requests) assert.equal(req.headers.authorization, 'Bearer t1');
    assert.equal(config.agentCount, 1);
    config.close();
  });

  test('plain requests with the config (the informers lists) reuse the connection too', async () => {
    const config = PooledKubeConfig.from(kubeConfigFor('t2'));
    const api = config.makeApiClient(CoreV1Api);
    await api.listNamespace();
    const options: RequestOptions = { headers: {} };
    await config.applyToHTTPSOptions(options);
    const url = `${config.getCurrentCluster()?.server}/api/v1/namespaces`;
    await new Promise<void>((resolve, reject) => {
      request(url, options, (res) => res.resume().on('end', resolve))
        .on('error', reject)
        .end();
    });
    assert.equal(connections, 1);
    assert.equal(requests.at(-1)?.headers.authorization, 'Bearer t2');
    config.close();
  });

  test('close() ends the kept connections; later calls open a new one', async () => {
    const config = PooledKubeConfig.from(kubeConfigFor('t3'));
    const api = config.makeApiClient(CoreV1Api);
    await api.listNamespace();
    config.close();
    await api.listNamespace();
    assert.equal(connections, 2);
    config.close();
  });

  test('a pooled config is not wrapped twice', () => {
    const config = PooledKubeConfig.from(kubeConfigFor('t4'));
    assert.equal(PooledKubeConfig.from(config), config);
  });
});
