/**
 * The budgets this sidecar enforces and how a stream finds its own. In standalone mode
 * the pod is the whole fleet: its grant is the whole budget, and a new-session budget of
 * P a minute lets it start P streams in any 61 s, so that no 60 s window of the provider
 * holds more than P starts.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type StreamBudget, slotHoldMs } from '../crds/api/index.js';
import { BudgetGate, type Grant } from './admission.js';
import { RouteMatcher, type StreamRoute } from './match.js';
import type { RelayTimings } from './relay.js';

export interface EnforcedBudget {
  /** namespace/name, the label budgets go by in metrics and logs. */
  key: string;
  budget: StreamBudget;
  gate: BudgetGate;
  matcher: RouteMatcher;
  upstream: URL;
}

/** The whole budget, for a sidecar that enforces it alone. */
export function standaloneGrant(budget: StreamBudget): Grant {
  const perMinute = budget.spec.newSessions?.perMinute;
  if (perMinute === undefined) return { concurrency: budget.spec.maxConcurrentStreams };
  return { concurrency: budget.spec.maxConcurrentStreams, newSessionsPerMinute: perMinute };
}

export function enforce(budgets: StreamBudget[], grant: (b: StreamBudget) => Grant, now: number): EnforcedBudget[] {
  return budgets.map((budget) => {
    const key = `${budget.metadata.namespace ?? 'default'}/${budget.metadata.name}`;
    return {
      key,
      budget,
      gate: new BudgetGate(
        {
          name: key,
          queueTimeoutMs: budget.spec.admission.queueTimeoutMs,
          maxQueueLength: budget.spec.admission.maxQueueLength,
          releaseDelayMs: slotHoldMs(budget),
        },
        grant(budget),
        now,
      ),
      matcher: new RouteMatcher(budget.spec.match),
      upstream: new URL(budget.spec.upstream),
    };
  });
}

/** Every budget that covers the stream. */
export function budgetsFor(budgets: readonly EnforcedBudget[], route: StreamRoute): EnforcedBudget[] {
  return budgets.filter((b) => b.matcher.covers(route));
}

/** The strictest reaping timings among the budgets a stream is charged to. */
export function timingsFor(
  budgets: readonly EnforcedBudget[],
  limits: { closeTimeoutMs: number; maxPayload: number },
): RelayTimings {
  const min = (read: (b: EnforcedBudget) => number) => Math.min(...budgets.map(read)) * 1000;
  return {
    idleTimeoutMs: min((b) => b.budget.spec.reaping.idleTimeoutSeconds),
    pingIntervalMs: min((b) => b.budget.spec.reaping.pingIntervalSeconds),
    maxStreamMs: min((b) => b.budget.spec.reaping.maxStreamSeconds),
    closeTimeoutMs: limits.closeTimeoutMs,
    maxPayload: limits.maxPayload,
  };
}

/** Where the key for a stream comes from: the configured file, or the first budget's mounted Secret. */
export function keyFileFor(
  budgets: readonly EnforcedBudget[],
  config: { apiKeyFile: string | undefined; secretsDir: string },
): string | undefined {
  if (config.apiKeyFile) return config.apiKeyFile;
  const ref = budgets.find((b) => b.budget.spec.apiKeySecretRef)?.budget.spec.apiKeySecretRef;
  return ref ? join(config.secretsDir, ref.name, ref.key) : undefined;
}

/**
 * Reads the provider's API key from `file`. Throws with a message that names the file but
 * never the key: the file cannot be read, is empty, or holds what a header cannot carry.
 */
export function readApiKey(file: string): string {
  let key: string;
  try {
    key = readFileSync(file, 'utf8').trim();
  } catch {
    throw new Error(`The API key file ${file} cannot be read`);
  }
  if (key === '') throw new Error(`The API key file ${file} is empty`);
  // One printable token: anything else cannot go in a header (and is never echoed).
  if (!/^[\x21-\x7e]+$/.test(key)) throw new Error(`The API key in ${file} holds characters a header cannot carry`);
  return key;
}
