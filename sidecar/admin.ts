/**
 * The admin port: liveness, readiness (false once draining), Prometheus metrics, and
 * the open streams as JSON (no headers, keys or queries).
 */
import Fastify, { type FastifyInstance } from 'fastify';
import type { SidecarMetrics } from './metrics.js';
import type { StreamInfo } from './proxy.js';

export interface AdminOptions {
  metrics: SidecarMetrics;
  ready: () => boolean;
  streams: () => StreamInfo[];
}

export function createAdmin(options: AdminOptions): FastifyInstance {
  const app = Fastify({ logger: false });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const ready = options.ready();
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'draining' });
  });
  app.get('/metrics', async (_request, reply) => {
    const text = await options.metrics.registry.metrics();
    return reply.type(options.metrics.registry.contentType).send(text);
  });
  app.get('/streams', async () => options.streams());
  app.setNotFoundHandler(async (request, reply) =>
    reply.code(404).send({ error: `no endpoint ${request.method} ${request.url.split('?')[0]}` }),
  );
  app.setErrorHandler(async (error: { statusCode?: number; message: string }, _request, reply) =>
    reply.code(error.statusCode ?? 500).send({ error: error.message }),
  );
  return app;
}
