#!/usr/bin/env node
/**
 * sluice-operator: splits each StreamBudget across the pods that share it.
 * Configuration from flags and environment variables (see the README); anything wrong
 * exits 2. SIGTERM or SIGINT: the leader steps down and releases its lease, so a standby
 * takes over at once; the process exits 0.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import pkg from '../package.json' with { type: 'json' };
import { type OperatorConfig, OperatorConfigError, readOperatorConfig } from './config.js';
import { type Operator, startOperator } from './operator.js';

if (process.argv.includes('--version')) {
  console.log(`sluice-operator ${pkg.version}`);
  process.exit(0);
}

function exitWith(message: string): never {
  console.error(message);
  process.exit(2);
}

let config: OperatorConfig;
try {
  config = readOperatorConfig(process.argv.slice(2), process.env);
} catch (error) {
  if (error instanceof OperatorConfigError) exitWith(error.message);
  throw error;
}

const kubeConfig = new KubeConfig();
try {
  kubeConfig.loadFromDefault();
} catch (error) {
  exitWith(`Cannot load the Kubernetes client configuration: ${(error as Error).message}`);
}

const log = pino({ level: config.logLevel, base: { component: 'sluice-operator', identity: config.identity } });
let operator: Operator;
try {
  operator = await startOperator(config, kubeConfig, log);
} catch (error) {
  log.fatal({ err: (error as Error).message, code: (error as { code?: unknown }).code }, 'Failed to start');
  process.exit(1);
}
log.info({ version: pkg.version, adminPort: operator.adminPort }, 'Started operator');

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    operator.stop().then(
      () => process.exit(0),
      (error: Error) => {
        log.error({ err: error.message }, 'Failed to stop cleanly');
        process.exit(1);
      },
    );
  });
}
