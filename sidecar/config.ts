/**
 * The sidecar's configuration, from environment variables, validated at start: any
 * problem is reported with the variable's name and the process exits with code 2.
 * Two modes: standalone (a budget file, no Kubernetes) or Kubernetes (the pod's name,
 * namespace and UID from the downward API; budgets and grants from the API server).
 */

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Address {
  host: string;
  port: number;
}

/** The pod the sidecar runs in (Kubernetes mode). */
export interface PodIdentity {
  name: string;
  namespace: string;
  uid: string;
}

export interface SidecarConfig {
  /** standalone: enforce the budget file alone; kubernetes: enforce the grants of the pod's StreamLeases. */
  mode: 'standalone' | 'kubernetes';
  /** The proxy: applications point their SDK here. */
  listen: Address;
  /** Health, readiness, metrics and /streams. */
  adminListen: Address;
  /** StreamBudget manifests to enforce alone (standalone mode; '' in Kubernetes mode). */
  budgetFile: string;
  /** The pod, in Kubernetes mode. */
  pod: PodIdentity | undefined;
  /** A file holding the provider's API key; overrides the budgets' secret references. */
  apiKeyFile: string | undefined;
  /** Where the Secrets named by budgets' apiKeySecretRef are mounted: <dir>/<secret>/<key>. */
  secretsDir: string;
  logLevel: LogLevel;
  /** What to do with a stream no budget covers: refuse it (403) or pass it through uncounted. */
  unmatched: 'reject' | 'pass';
  /** Largest frame accepted from a client, in bytes (larger: close 1009). */
  maxPayloadBytes: number;
  /** How long the client may take to send its handshake. */
  clientHandshakeTimeoutMs: number;
  /** How long the upstream may take to answer a handshake. */
  upstreamHandshakeTimeoutMs: number;
  /** How long to wait for the upstream to close after CloseStream before cutting it. */
  closeTimeoutMs: number;
  /** On SIGTERM, how long open streams may run on before the sidecar ends them. */
  shutdownGraceSeconds: number;
}

/** Configuration the sidecar cannot start with. */
export class SidecarConfigError extends Error {
  readonly code = 'SLUICE_E_CONFIG';

  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'SidecarConfigError';
  }
}

const levels: LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Reads and checks the configuration from `env`. */
export function readSidecarConfig(env: NodeJS.ProcessEnv): SidecarConfig {
  const problems: string[] = [];

  const address = (name: string, fallback: string): Address => {
    const value = env[name] || fallback;
    const match = /^(\[[0-9a-fA-F:.]+\]|[^:]+):(\d{1,5})$/.exec(value);
    const port = Number(match?.[2]);
    if (!match || port > 65535) {
      problems.push(`${name}: must be host:port, e.g. ${fallback}; got ${JSON.stringify(value)}`);
      return { host: '127.0.0.1', port: 0 };
    }
    return { host: (match[1] as string).replace(/^\[|\]$/g, ''), port };
  };
  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      problems.push(`${name}: must be a whole number from ${min} to ${max}; got ${JSON.stringify(raw)}`);
      return fallback;
    }
    return value;
  };
  const oneOf = <T extends string>(name: string, fallback: T, allowed: readonly T[]): T => {
    const value = (env[name] || fallback) as T;
    if (!allowed.includes(value))
      problems.push(`${name}: must be one of ${allowed.join(', ')}; got ${JSON.stringify(value)}`);
    return value;
  };

  const budgetFile = env.SLUICE_BUDGET_FILE ?? '';
  const podVariables = ['POD_NAME', 'POD_NAMESPACE', 'POD_UID'] as const;
  const podSet = podVariables.filter((name) => (env[name] ?? '') !== '');
  let pod: PodIdentity | undefined;
  if (budgetFile !== '' && podSet.length > 0) {
    problems.push(
      `SLUICE_BUDGET_FILE: cannot be combined with ${podSet.join(', ')}: set the budget file (standalone) or POD_NAME, POD_NAMESPACE and POD_UID (Kubernetes), not both`,
    );
  } else if (podSet.length > 0 && podSet.length < podVariables.length) {
    const missing = podVariables.filter((name) => !podSet.includes(name));
    problems.push(
      `${missing.join(', ')}: ${missing.length > 1 ? 'are' : 'is'} required with ${podSet.join(', ')} (Kubernetes mode needs all three, from the downward API)`,
    );
  } else if (podSet.length === podVariables.length) {
    pod = { name: env.POD_NAME as string, namespace: env.POD_NAMESPACE as string, uid: env.POD_UID as string };
  } else if (budgetFile === '') {
    problems.push(
      'SLUICE_BUDGET_FILE: is required: a YAML file with the StreamBudgets to enforce (or, in Kubernetes, set POD_NAME, POD_NAMESPACE and POD_UID)',
    );
  }
  const config: SidecarConfig = {
    mode: pod ? 'kubernetes' : 'standalone',
    listen: address('SLUICE_LISTEN', '127.0.0.1:8080'),
    adminListen: address('SLUICE_ADMIN_LISTEN', '0.0.0.0:9090'),
    budgetFile,
    pod,
    apiKeyFile: env.SLUICE_API_KEY_FILE || undefined,
    secretsDir: env.SLUICE_SECRETS_DIR || '/var/run/secrets/sluice',
    logLevel: oneOf('SLUICE_LOG_LEVEL', 'info', levels),
    unmatched: oneOf('SLUICE_UNMATCHED', 'reject', ['reject', 'pass'] as const),
    maxPayloadBytes: integer('SLUICE_MAX_PAYLOAD_BYTES', 1024 * 1024, 1024, 64 * 1024 * 1024),
    clientHandshakeTimeoutMs: integer('SLUICE_CLIENT_HANDSHAKE_TIMEOUT_MS', 10_000, 100, 600_000),
    upstreamHandshakeTimeoutMs: integer('SLUICE_UPSTREAM_HANDSHAKE_TIMEOUT_MS', 10_000, 100, 600_000),
    closeTimeoutMs: integer('SLUICE_CLOSE_TIMEOUT_MS', 5_000, 100, 600_000),
    shutdownGraceSeconds: integer('SLUICE_SHUTDOWN_GRACE_SECONDS', 25, 0, 3600),
  };
  if (problems.length > 0) throw new SidecarConfigError(problems);
  return config;
}
