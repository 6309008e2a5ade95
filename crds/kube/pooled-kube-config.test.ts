/**
 * Which agent each request gets, without sending any: one kept-alive agent per set of TLS
 * credentials, shared by generated clients and plain requests, credentials applied per
 * request. That the agents keep their connections to a real API server is shown in
 * test/cluster/api-connections.test.ts.
 */
import assert from 'node:assert/strict';
import type { OutgoingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, type RequestOptions } from 'node:https';
import { describe, test } from 'node:test';
import { HttpMethod, KubeConfig, RequestContext } from '@kubernetes/client-node';
import { PooledKubeConfig } from './pooled-kube-config.js';

const server = 'https://127.0.0.1:6443';

function kubeConfig(user: { token?: string; certData?: string; keyData?: string }): KubeConfig {
  const config = new KubeConfig();
  config.loadFromOptions({
    clusters: [{ name: 'local', server, skipTLSVerify: false }],
    users: [{ name: 'user', ...user }],
    contexts: [{ name: 'local', cluster: 'local', user: 'user' }],
    currentContext: 'local',
  });
  return config;
}

/** What a plain request made with the config carries: its agent and headers. */
async function plainRequest(
  config: KubeConfig,
): Promise<{ agent: RequestOptions['agent']; headers: OutgoingHttpHeaders }> {
  const options: RequestOptions & { headers: OutgoingHttpHeaders } = { headers: {} };
  await config.applyToHTTPSOptions(options);
  return { agent: options.agent, headers: options.headers };
}

/** What a generated client's request carries. */
async function generatedRequest(config: KubeConfig): Promise<RequestContext> {
  const context = new RequestContext(`${server}/api/v1/namespaces`, HttpMethod.GET);
  await config.applySecurityAuthentication(context);
  return context;
}

const base64 = (text: string) => Buffer.from(text).toString('base64');

describe('PooledKubeConfig', () => {
  test('the library alone gives every request an agent of its own', async () => {
    const config = kubeConfig({ token: 't' });
    const [first, second] = [await plainRequest(config), await plainRequest(config)];
    assert.notEqual(first.agent, second.agent);
  });

  test('gives every request with the same credentials one kept-alive agent, generated clients and plain requests alike', async () => {
    const config = PooledKubeConfig.from(kubeConfig({ token: 't' }));
    const plain = await plainRequest(config);
    assert.ok(plain.agent instanceof HttpsAgent);
    assert.equal((plain.agent as HttpsAgent & { keepAlive?: boolean }).keepAlive, true);
    assert.equal((await plainRequest(config)).agent, plain.agent);
    assert.equal((await generatedRequest(config)).getAgent(), plain.agent);
    assert.equal(config.agentCount, 1);
    config.close();
  });

  test('applies the credentials to every request: a new token goes out on the kept agent', async () => {
    const config = PooledKubeConfig.from(kubeConfig({ token: 'first' }));
    const before = await plainRequest(config);
    assert.equal(before.headers.Authorization, 'Bearer first');
    (config.users[0] as { token: string }).token = 'second';
    const after = await plainRequest(config);
    assert.equal(after.headers.Authorization, 'Bearer second');
    assert.equal((await generatedRequest(config)).getHeaders().Authorization, 'Bearer second');
    assert.equal(after.agent, before.agent, 'a token is a header, not part of the connection');
    config.close();
  });

  test('gives other client certificates an agent of their own, and keeps at most four', async () => {
    const config = PooledKubeConfig.from(kubeConfig({ certData: base64('cert-0'), keyData: base64('key-0') }));
    const agents = [];
    for (let i = 0; i < 6; i++) {
      Object.assign(config.users[0] as object, { certData: base64(`cert-${i}`), keyData: base64(`key-${i}`) });
      agents.push((await plainRequest(config)).agent);
    }
    assert.equal(new Set(agents).size, 6, 'rotated certificates never share a connection');
    assert.equal(config.agentCount, 4);
    Object.assign(config.users[0] as object, { certData: base64('cert-5'), keyData: base64('key-5') });
    assert.equal((await plainRequest(config)).agent, agents[5], 'the newest are kept');
    Object.assign(config.users[0] as object, { certData: base64('cert-0'), keyData: base64('key-0') });
    assert.notEqual((await plainRequest(config)).agent, agents[0], 'the oldest was let go');
    config.close();
  });

  test('close() lets the kept agents go; later requests get a new one', async () => {
    const config = PooledKubeConfig.from(kubeConfig({ token: 't' }));
    const before = (await plainRequest(config)).agent;
    config.close();
    assert.equal(config.agentCount, 0);
    const after = (await plainRequest(config)).agent;
    assert.notEqual(after, before);
    assert.equal(config.agentCount, 1);
    config.close();
  });

  test('a pooled config is not wrapped twice', () => {
    const config = PooledKubeConfig.from(kubeConfig({ token: 't' }));
    assert.equal(PooledKubeConfig.from(config), config);
  });
});
