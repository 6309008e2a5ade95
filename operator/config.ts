/**
 * The operator's configuration, from environment variables and command-line flags (a
 * flag wins), validated at start: any problem is reported by name and the process exits
 * with code 2.
 */
import { hostname } from 'node:os';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface OperatorConfig {
  /** Health, readiness and metrics. */
  adminListen: { host: string; port: number };
  /** Namespace to watch; all namespaces when empty. */
  watchNamespace: string | undefined;
  /** Where the leader-election Lease lives. */
  leaderElectionNamespace: string;
  leaderElectionName: string;
  /** This replica's name in the election. */
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  /** Extra hold for a pod that went while its lease was stale; the budget's maxStreamSeconds when unset. */
  staleGoneHoldSeconds: number | undefined;
  /**
   * A pod's demand halves this often once it drops. Short: the sidecar's report is already
   * the peak of its last 10 s, and capacity a quiet pod keeps is refused to busy ones.
   */
  demandHalfLifeSeconds: number;
  peakWindowSeconds: number;
  /** Usage figures in a budget's status are written at most this often; conditions at once. */
  statusIntervalSeconds: number;
  workers: number;
  logLevel: LogLevel;
}

export class OperatorConfigError extends Error {
  readonly code = 'SLUICE_E_OPERATOR_CONFIG';

  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'OperatorConfigError';
  }
}

/** Flags and the environment variables they override. */
export const operatorSettings = {
  'admin-listen': 'SLUICE_OPERATOR_ADMIN_LISTEN',
  'watch-namespace': 'SLUICE_WATCH_NAMESPACE',
  'leader-election-namespace': 'SLUICE_LEADER_ELECTION_NAMESPACE',
  'leader-election-name': 'SLUICE_LEADER_ELECTION_NAME',
  identity: 'SLUICE_OPERATOR_IDENTITY',
  'leader-election-lease-seconds': 'SLUICE_LEADER_ELECTION_LEASE_SECONDS',
  'leader-election-renew-deadline-seconds': 'SLUICE_LEADER_ELECTION_RENEW_DEADLINE_SECONDS',
  'leader-election-retry-period-seconds': 'SLUICE_LEADER_ELECTION_RETRY_PERIOD_SECONDS',
  'stale-gone-hold-seconds': 'SLUICE_STALE_GONE_HOLD_SECONDS',
  'demand-half-life-seconds': 'SLUICE_DEMAND_HALF_LIFE_SECONDS',
  'peak-window-seconds': 'SLUICE_PEAK_WINDOW_SECONDS',
  'status-interval-seconds': 'SLUICE_STATUS_INTERVAL_SECONDS',
  workers: 'SLUICE_OPERATOR_WORKERS',
  'log-level': 'SLUICE_LOG_LEVEL',
} as const;

type Setting = keyof typeof operatorSettings;

/** Reads the configuration from `argv` (flags `--name=value` or `--name value`) and `env`. */
export function readOperatorConfig(argv: readonly string[], env: NodeJS.ProcessEnv): OperatorConfig {
  const problems: string[] = [];
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!match || !Object.hasOwn(operatorSettings, match[1] as string)) {
      problems.push(
        `${arg}: unknown argument; flags are ${Object.keys(operatorSettings)
          .map((f) => `--${f}`)
          .join(', ')}`,
      );
      continue;
    }
    const value = match[2] ?? argv[++i];
    if (value === undefined) problems.push(`--${match[1]}: needs a value`);
    else flags.set(match[1] as string, value);
  }
  const raw = (setting: Setting): { value: string | undefined; name: string } => {
    const flag = flags.get(setting);
    if (flag !== undefined) return { value: flag, name: `--${setting}` };
    const variable = operatorSettings[setting];
    return { value: env[variable] || undefined, name: variable };
  };
  const number = (setting: Setting, fallback: number, min: number, max: number): number => {
    const { value, name } = raw(setting);
    if (value === undefined) return fallback;
    const parsed = Number(value);
    if (!Number.isFinite(parsed) || parsed < min || parsed > max) {
      problems.push(`${name}: must be a number from ${min} to ${max}; got ${JSON.stringify(value)}`);
      return fallback;
    }
    return parsed;
  };
  const text = (setting: Setting, fallback: string): string => raw(setting).value ?? fallback;

  const listen = raw('admin-listen');
  const listenValue = listen.value ?? '0.0.0.0:9090';
  const address = /^(\[[0-9a-fA-F:.]+\]|[^:]+):(\d{1,5})$/.exec(listenValue);
  if (!address || Number(address[2]) > 65535) {
    problems.push(`${listen.name}: must be host:port, e.g. 0.0.0.0:9090; got ${JSON.stringify(listenValue)}`);
  }
  const levels: LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
  const logLevel = text('log-level', 'info') as LogLevel;
  if (!levels.includes(logLevel)) problems.push(`${raw('log-level').name}: must be one of ${levels.join(', ')}`);

  const leaseDurationMs = number('leader-election-lease-seconds', 15, 1, 3600) * 1000;
  const renewDeadlineMs = number('leader-election-renew-deadline-seconds', 10, 0.5, 3600) * 1000;
  const retryPeriodMs = number('leader-election-retry-period-seconds', 2, 0.1, 3600) * 1000;
  if (renewDeadlineMs >= leaseDurationMs)
    problems.push('leader election: the renew deadline must be shorter than the lease');
  if (retryPeriodMs >= renewDeadlineMs)
    problems.push('leader election: the retry period must be shorter than the renew deadline');
  const staleGone = raw('stale-gone-hold-seconds').value;

  const config: OperatorConfig = {
    adminListen: { host: (address?.[1] ?? '0.0.0.0').replace(/^\[|\]$/g, ''), port: Number(address?.[2] ?? 0) },
    watchNamespace: raw('watch-namespace').value,
    leaderElectionNamespace: text('leader-election-namespace', env.POD_NAMESPACE || 'sluice-system'),
    leaderElectionName: text('leader-election-name', 'sluice-operator'),
    identity: text('identity', env.POD_NAME || `${hostname()}-${process.pid}`),
    leaseDurationMs,
    renewDeadlineMs,
    retryPeriodMs,
    staleGoneHoldSeconds: staleGone === undefined ? undefined : number('stale-gone-hold-seconds', 0, 0, 86_400),
    demandHalfLifeSeconds: number('demand-half-life-seconds', 5, 0.1, 3600),
    peakWindowSeconds: number('peak-window-seconds', 300, 1, 86_400),
    statusIntervalSeconds: number('status-interval-seconds', 2, 0, 3600),
    workers: number('workers', 4, 1, 64),
    logLevel,
  };
  if (problems.length > 0) throw new OperatorConfigError(problems);
  return config;
}
