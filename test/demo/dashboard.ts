/**
 * The demo's live table: what the budget, each pod's lease and the referee say, next
 * to what the load generator asked for and saw. Rendering is a pure function of a
 * snapshot; the Screen redraws in place on a terminal and appends plain blocks
 * otherwise (a pipe, a log file, a test).
 */
import { acknowledged, type StreamBudget, type StreamLease } from '../../crds/api/index.js';
import type { PodLoadCounts } from './load-generator.js';
import type { Phase } from './schedule.js';

export interface Snapshot {
  elapsedMs: number;
  durationMs: number;
  phase: Phase;
  phaseIndex: number;
  phaseCount: number;
  limit: number;
  budget: StreamBudget | undefined;
  leases: readonly StreamLease[];
  load: readonly PodLoadCounts[];
  referee: { inUse: number; peak: number; overLimitMoments: number };
}

type Cell = string | number | undefined;

/** Columns padded to their widest cell: the first left-aligned, the rest right-aligned. */
export function formatTable(header: readonly string[], rows: readonly (readonly Cell[])[]): string[] {
  const text = [header, ...rows].map((row) => row.map((cell) => (cell === undefined ? '–' : String(cell))));
  const widths = header.map((_, i) => Math.max(...text.map((row) => (row[i] ?? '').length)));
  return text.map((row) =>
    row
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] as number) : cell.padStart(widths[i] as number)))
      .join('  ')
      .trimEnd(),
  );
}

/** The grant a pod enforces; `old→new` while a new one waits for the sidecar's acknowledgement. */
export function grantCell(lease: StreamLease | undefined): string | undefined {
  if (!lease) return undefined;
  const wanted = lease.spec.grant.concurrency;
  const enforced = lease.status?.grant?.concurrency;
  if (acknowledged(lease)) return String(enforced ?? wanted);
  return `${enforced ?? '–'}→${wanted}`;
}

export function renderSnapshot(s: Snapshot): string[] {
  const status = s.budget?.status;
  const demand = s.load.reduce((sum, p) => sum + p.demand, 0);
  const seconds = Math.min(s.durationMs, s.elapsedMs) / 1000;
  const over = demand > s.limit ? ' — more than the limit' : '';
  const lines = [
    `sluice demo   ${seconds.toFixed(0)} s of ${(s.durationMs / 1000).toFixed(0)} s   phase ${s.phaseIndex + 1}/${s.phaseCount}: ${s.phase.name} (demand ${demand}${over})`,
    '',
    ...formatTable(
      ['budget', 'limit', 'allocated', 'in use', 'queued', 'rejected', 'upstream in use', 'upstream peak'],
      [
        [
          s.budget?.metadata.name ?? 'budget',
          s.limit,
          status?.allocated,
          status?.inUse,
          status?.queued,
          status?.rejectedTotal,
          s.referee.inUse,
          s.referee.peak,
        ],
      ],
    ),
    '',
    ...formatTable(
      ['pod', 'wants', 'open', '429s seen', 'demand', 'grant', 'in use', 'queued', 'rejected'],
      s.load.map((pod) => {
        const lease = s.leases.find((l) => l.spec.podName === pod.name);
        return [
          pod.name,
          pod.demand,
          pod.open,
          pod.refused,
          lease?.status?.demand,
          grantCell(lease),
          lease?.status?.inUse,
          lease?.status?.queued,
          lease?.status?.rejectedTotal,
        ];
      }),
    ),
    '',
    'wants, open, 429s seen: the load generator; demand to rejected: the StreamLease (grant old→new until acknowledged)',
  ];
  if (s.referee.overLimitMoments > 0) {
    lines.push('', `The upstream went over the limit ${s.referee.overLimitMoments} times.`);
  }
  return lines;
}

/** Where the table goes: redrawn in place on a terminal, appended as blocks elsewhere. */
export class Screen {
  readonly #out: NodeJS.WriteStream;
  readonly #redraw: boolean;
  #drawn = 0;

  constructor(out: NodeJS.WriteStream = process.stdout) {
    this.#out = out;
    this.#redraw = out.isTTY === true && process.env.TERM !== 'dumb';
  }

  draw(lines: readonly string[]): void {
    if (this.#redraw) {
      // Up to the first line of the last drawing, then clear to the end of the screen.
      const up = this.#drawn > 0 ? `\x1b[${this.#drawn}F\x1b[J` : '';
      this.#out.write(`${up}${lines.join('\n')}\n`);
      this.#drawn = lines.length;
    } else {
      this.#out.write(`${lines.join('\n')}\n\n`);
    }
  }

  /** Text after which the next drawing starts afresh below. */
  print(text: string): void {
    this.#out.write(`${text}\n`);
    this.#drawn = 0;
  }
}
