/**
 * The operator's admin port: liveness, readiness (caches synced; a standby replica is
 * ready too, so a rollout does not wait on the election) and Prometheus metrics.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { OperatorMetrics } from './metrics.js';

export interface OperatorAdminOptions {
  metrics: OperatorMetrics;
  ready: () => boolean;
  leading: () => boolean;
}

export function createOperatorAdmin(options: OperatorAdminOptions): FastifyInstance {
  const app = Fastify({ logger: false });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const ready = options.ready();
    return reply
      .code(ready ? 200 : 503)
      .send({ status: ready ? 'ready' : 'starting', role: options.leading() ? 'leader' : 'standby' });
  });
  app.get('/metrics', async (_request, reply) => {
    const text = await options.metrics.registry.metrics();
    return reply.type(options.metrics.registry.contentType).send(text);
  });
  app.setNotFoundHandler(async (request, reply) =>
    reply.code(404).send({ error: `no endpoint ${request.method} ${request.url.split('?')[0]}` }),
  );
  return app;
}
