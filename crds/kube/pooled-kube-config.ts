/**
 * A kubeconfig whose API calls keep their connections. @kubernetes/client-node builds a
 * new agent for every request, so every call to the API server would open a connection
 * and do a TLS handshake of its own — for a fleet of sidecars heartbeating every few
 * seconds, a steady stream of handshakes on the API server. This one hands each request
 * an agent kept per set of TLS credentials, with keep-alive on. Credentials still apply
 * per request: a rotated token is read as before, rotated client certificates get an
 * agent of their own. Proxy agents are left as the library makes them.
 */
import { createHash } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent, type RequestOptions } from 'node:https';
import { KubeConfig, type RequestContext } from '@kubernetes/client-node';

/** Agents kept at most; credentials that rotate leave the oldest behind. */
const maxAgents = 4;

type Credential = string | Buffer | (string | Buffer)[] | unknown;

function fingerprint(value: Credential): string {
  if (value === undefined || value === null) return '';
  const hash = createHash('sha256');
  for (const part of Array.isArray(value) ? value : [value]) {
    hash.update(typeof part === 'string' || Buffer.isBuffer(part) ? part : JSON.stringify(part));
  }
  return hash.digest('base64');
}

export class PooledKubeConfig extends KubeConfig {
  readonly #agents = new Map<string, HttpAgent>();

  /** The same clusters, users and contexts, with pooled connections; a pooled one is returned as is. */
  static from(config: KubeConfig): PooledKubeConfig {
    if (config instanceof PooledKubeConfig) return config;
    const pooled = new PooledKubeConfig();
    pooled.loadFromOptions({
      clusters: config.clusters,
      contexts: config.contexts,
      users: config.users,
      currentContext: config.currentContext,
    });
    return pooled;
  }

  /** Used by every generated API client made from this config. */
  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const agent = context.getAgent();
    if (agent) context.setAgent(this.#pooled(agent));
  }

  /** Used by plain HTTP requests made with this config's credentials (the informers' lists). */
  override async applyToHTTPSOptions(options: Parameters<KubeConfig['applyToHTTPSOptions']>[0]): Promise<void> {
    await super.applyToHTTPSOptions(options);
    const agent = (options as RequestOptions).agent;
    if (agent instanceof HttpAgent) (options as RequestOptions).agent = this.#pooled(agent);
  }

  /** Closes every kept connection; requests made afterwards open new ones. */
  close(): void {
    for (const agent of this.#agents.values()) agent.destroy();
    this.#agents.clear();
  }

  /** How many agents are kept (for tests). */
  get agentCount(): number {
    return this.#agents.size;
  }

  #pooled(agent: HttpAgent): HttpAgent {
    const secure = agent.constructor === HttpsAgent;
    if (!secure && agent.constructor !== HttpAgent) return agent;
    const options = (agent as HttpAgent & { options?: Record<string, unknown> }).options ?? {};
    const key = [
      secure ? 'https' : 'http',
      String(options.rejectUnauthorized),
      String(options.servername ?? ''),
      ...[options.ca, options.cert, options.key, options.pfx, options.passphrase].map(fingerprint),
    ].join('|');
    let pooled = this.#agents.get(key);
    if (!pooled) {
      const settings = { ...options, keepAlive: true };
      pooled = secure ? new HttpsAgent(settings) : new HttpAgent(settings);
      this.#agents.set(key, pooled);
      const oldest = this.#agents.keys().next().value;
      // A dropped agent's requests finish; its idle connections are closed by the server in time.
      if (this.#agents.size > maxAgents && oldest !== undefined) this.#agents.delete(oldest);
    }
    return pooled;
  }
}
