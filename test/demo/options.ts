/**
 * The demo's command line, read and checked in one place: a bad flag or value is a
 * usage error (exit 2) before anything starts.
 */
import { parseArgs } from 'node:util';

export interface DemoOptions {
  /** Seconds of load, after the fleet is up. */
  durationSeconds: number;
  /** Pods (sidecar processes) sharing the budget. */
  pods: number;
  /** The budget's maxConcurrentStreams, and the referee's limit. */
  limit: number;
}

export const usage = `Usage: npm run demo [-- --duration SECONDS] [--pods N] [--limit STREAMS]

Runs sluice on a local control plane: a StreamBudget, the operator, N sidecars acting
as pods, the upstream emulator as referee, and a load generator whose demand moves
between the pods. Prints a live table every second and a summary at the end; Ctrl-C
stops everything.

  --duration SECONDS   how long the load runs, 10 to 3600 (default 60)
  --pods N             pods sharing the budget, 1 to 8 (default 4)
  --limit STREAMS      the budget's maxConcurrentStreams, N to 500 (default 150)
  --help               this text`;

/** A flag or value the demo cannot run with; the message names it. */
export class UsageError extends Error {
  readonly code = 'SLUICE_E_DEMO_USAGE';

  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

function integer(flag: string, text: string, min: number, max: number): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`--${flag} must be a whole number, not "${text}"`);
  const value = Number(text);
  if (value < min || value > max) throw new UsageError(`--${flag} must be between ${min} and ${max}, not ${value}`);
  return value;
}

/** The options in `argv`, `'help'` when help was asked for; throws UsageError otherwise. */
export function parseDemoOptions(argv: readonly string[]): DemoOptions | 'help' {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        duration: { type: 'string' },
        pods: { type: 'string' },
        limit: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    // parseArgs explains unknown flags, missing values and stray arguments well enough.
    throw new UsageError((error as Error).message.split('. ')[0] as string);
  }
  if (values.help) return 'help';
  const pods = integer('pods', (values.pods as string | undefined) ?? '4', 1, 8);
  return {
    durationSeconds: integer('duration', (values.duration as string | undefined) ?? '60', 10, 3600),
    pods,
    limit: integer('limit', (values.limit as string | undefined) ?? '150', pods, 500),
  };
}
