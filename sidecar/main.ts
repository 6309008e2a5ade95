#!/usr/bin/env -S node --max-semi-space-size=2
/**
 * sluice-sidecar: the per-pod proxy that enforces the pod's share of its budgets.
 * It runs in every pod, so its young generation is capped (the flag above): streams
 * allocate little that lives, and a larger nursery would only grow the footprint.
 * Configuration comes from the environment (see the README); anything wrong exits 2.
 * Standalone, it enforces a budget file alone; in a pod (POD_NAME, POD_NAMESPACE,
 * POD_UID), the grants the operator writes into the pod's StreamLeases.
 * SIGTERM drains: readiness goes false, nothing new is admitted, open streams get the
 * grace period, then CloseStream and close 1012; the process exits 0.
 */
import { readFileSync } from 'node:fs';
import type { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { InvalidManifestError, parseStreamBudgets, type StreamBudget } from '../crds/api/index.js';
import pkg from '../package.json' with { type: 'json' };
import { readApiKey } from './budgets.js';
import { readSidecarConfig, type SidecarConfig, SidecarConfigError } from './config.js';
import { type Sidecar, startSidecar } from './sidecar.js';

if (process.argv.includes('--version')) {
  console.log(`sluice-sidecar ${pkg.version}`);
  process.exit(0);
}

function exitWith(message: string): never {
  console.error(message);
  process.exit(2);
}

let config: SidecarConfig;
try {
  config = readSidecarConfig(process.env);
} catch (error) {
  if (error instanceof SidecarConfigError) exitWith(error.message);
  throw error;
}

let manifests: StreamBudget[] = [];
if (config.mode === 'standalone') {
  try {
    manifests = parseStreamBudgets(readFileSync(config.budgetFile, 'utf8'), config.budgetFile);
  } catch (error) {
    if (error instanceof InvalidManifestError) exitWith(`SLUICE_BUDGET_FILE: ${error.message}`);
    exitWith(`SLUICE_BUDGET_FILE: cannot read ${config.budgetFile}: ${(error as Error).message}`);
  }
}

// The key file given outright must be usable now; keys from budgets' Secrets are read per stream.
if (config.apiKeyFile) {
  try {
    readApiKey(config.apiKeyFile);
  } catch (error) {
    exitWith(`SLUICE_API_KEY_FILE: ${(error as Error).message}`);
  }
}

let kubeConfig: KubeConfig | undefined;
if (config.mode === 'kubernetes') {
  const { KubeConfig } = await import('@kubernetes/client-node');
  try {
    kubeConfig = new KubeConfig();
    kubeConfig.loadFromDefault();
  } catch (error) {
    exitWith(`Cannot load the Kubernetes client configuration: ${(error as Error).message}`);
  }
}

const log = pino({ level: config.logLevel, base: { component: 'sluice-sidecar' } });
let sidecar: Sidecar;
try {
  sidecar = await startSidecar(config, manifests, log, { kubeConfig });
} catch (error) {
  exitWith(`Cannot listen: ${(error as Error).message}`);
}
log.info(
  {
    mode: config.mode,
    pod: config.pod?.name,
    proxy: `${config.listen.host}:${sidecar.proxyPort}`,
    admin: `${config.adminListen.host}:${sidecar.adminPort}`,
    budgets: sidecar.budgets.map((b) => b.key),
  },
  'Started sidecar',
);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    log.info({ signal }, 'Received signal');
    void sidecar.shutdown().then(() => process.exit(0));
  });
}
