#!/usr/bin/env node
/**
 * sluice-sidecar: the per-pod proxy that enforces the pod's share of its budgets.
 * Configuration comes from the environment (see the README); anything wrong exits 2.
 * SIGTERM drains: readiness goes false, nothing new is admitted, open streams get the
 * grace period, then CloseStream and close 1012; the process exits 0.
 */
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { InvalidManifestError, parseStreamBudgets } from '../crds/api/index.js';
import pkg from '../package.json' with { type: 'json' };
import { createAdmin } from './admin.js';
import { Admission } from './admission.js';
import { enforce, standaloneGrant } from './budgets.js';
import { readSidecarConfig, SidecarConfigError } from './config.js';
import { SidecarMetrics } from './metrics.js';
import { StreamProxy } from './proxy.js';

if (process.argv.includes('--version')) {
  console.log(`sluice-sidecar ${pkg.version}`);
  process.exit(0);
}

function exitWith(message: string): never {
  console.error(message);
  process.exit(2);
}

let config: ReturnType<typeof readSidecarConfig>;
try {
  config = readSidecarConfig(process.env);
} catch (error) {
  if (error instanceof SidecarConfigError) exitWith(error.message);
  throw error;
}

let budgets: ReturnType<typeof enforce>;
try {
  const text = readFileSync(config.budgetFile, 'utf8');
  budgets = enforce(parseStreamBudgets(text, config.budgetFile), standaloneGrant, performance.now());
} catch (error) {
  if (error instanceof InvalidManifestError) exitWith(`SLUICE_BUDGET_FILE: ${error.message}`);
  exitWith(`SLUICE_BUDGET_FILE: cannot read ${config.budgetFile}: ${(error as Error).message}`);
}

const log = pino({ level: config.logLevel, base: { component: 'sluice-sidecar' } });
let metrics: SidecarMetrics | undefined;
const admission = new Admission(undefined, {
  doubleRelease: () => metrics?.doubleReleases.inc(),
  dequeued: () => {},
});
metrics = new SidecarMetrics(
  () => budgets,
  () => admission.queued,
);
const proxy = new StreamProxy({ config, budgets: () => budgets, admission, metrics, log });
const admin = createAdmin({ metrics, ready: () => !draining, streams: () => proxy.streams() });
let draining = false;

try {
  const port = await proxy.listen(config.listen.host, config.listen.port);
  await admin.listen({ host: config.adminListen.host, port: config.adminListen.port });
  const adminPort = (admin.server.address() as { port: number }).port;
  log.info(
    {
      proxy: `${config.listen.host}:${port}`,
      admin: `${config.adminListen.host}:${adminPort}`,
      budgets: budgets.map((b) => b.key),
    },
    'Started sidecar',
  );
} catch (error) {
  exitWith(`Cannot listen: ${(error as Error).message}`);
}

async function shutdown(signal: string): Promise<void> {
  if (draining) return;
  draining = true;
  log.info({ signal, open: proxy.openStreams, graceSeconds: config.shutdownGraceSeconds }, 'Draining');
  proxy.drain();
  await proxy.whenIdle(config.shutdownGraceSeconds * 1000);
  await proxy.endAll('shutdown', config.closeTimeoutMs);
  await Promise.all([proxy.close(), admin.close()]);
  log.info({}, 'Stopped sidecar');
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
