/**
 * The referee's books for one project: streams open, slots still counted after
 * unclean ends, the exact peak, every moment above the limit, handshakes by outcome,
 * and an entry for every acceptance and end. Updated on every open and close, never
 * sampled. Pure: the caller supplies the time.
 */

/** Why the emulator refused a handshake (or closed a stream right after it). */
export type RejectReason =
  | 'unauthorized'
  | 'bad-request'
  | 'not-found'
  | 'concurrency'
  | 'session-rate'
  | 'fault-status'
  | 'fault-refused';

export interface LedgerSnapshot {
  limit: number;
  enforce: boolean;
  /** Streams open now. */
  open: number;
  /** Slots still counted after unclean ends. */
  stale: number;
  /** open + stale: what the provider counts against the limit. */
  inUse: number;
  /** The highest inUse ever reached since the last reset. */
  peak: number;
  /** Times a stream was accepted while that took inUse above the limit. */
  overLimitMoments: number;
  /** Milliseconds spent with inUse above the limit. */
  overLimitMs: number;
  accepted: number;
  rejected: Partial<Record<RejectReason, number>>;
  /** Streams that ended without a close handshake. */
  uncleanEnds: number;
}

/** Who a stream is, as the ledger records its acceptance. */
export interface StreamIdentity {
  requestId: string;
  /** The stream's `tag` query parameters. */
  tags: readonly string[];
}

/**
 * One acceptance or end, on the emulator's clock, with what the provider counted right
 * after it. An end carries no stream: the provider counts slots, not streams.
 */
export type LedgerEntry =
  | ({ at: number; kind: 'accepted'; inUse: number } & StreamIdentity)
  | {
      at: number;
      kind: 'ended';
      clean: boolean;
      /** Until when the slot still counts: `at` for a clean end, `at` + the release delay otherwise. */
      countedUntil: number;
      inUse: number;
    };

/** Entries kept at most; the oldest are dropped (and counted) so a long run stays bounded. */
const maxEntries = 50_000;

export class ProjectLedger {
  readonly limit: number;
  readonly enforce: boolean;
  readonly #releaseDelayMs: number;
  #open = 0;
  /** Release times of stale slots, in order (the delay is the same for all). */
  #staleUntil: number[] = [];
  #peak = 0;
  #overLimitMoments = 0;
  #overLimitMs = 0;
  #overLimitSince: number | undefined;
  #accepted = 0;
  #rejected: Partial<Record<RejectReason, number>> = {};
  #uncleanEnds = 0;
  #entries: LedgerEntry[] = [];
  #droppedEntries = 0;

  constructor(options: { limit: number; enforce: boolean; releaseDelayMs: number }) {
    this.limit = options.limit;
    this.enforce = options.enforce;
    this.#releaseDelayMs = options.releaseDelayMs;
  }

  /** What the provider counts now: open streams plus unexpired stale slots. */
  inUse(now: number): number {
    this.#expire(now);
    return this.#open + this.#staleUntil.length;
  }

  /** Whether a new stream may open now; in observing mode always true. */
  hasRoom(now: number): boolean {
    return !this.enforce || this.inUse(now) < this.limit;
  }

  /** Counts a stream that was accepted. */
  opened(now: number, stream: StreamIdentity = { requestId: '', tags: [] }): void {
    this.#expire(now);
    this.#open += 1;
    this.#accepted += 1;
    const inUse = this.#open + this.#staleUntil.length;
    if (inUse > this.#peak) this.#peak = inUse;
    if (inUse > this.limit) {
      this.#overLimitMoments += 1;
      this.#overLimitSince ??= now;
    }
    this.#record({ at: now, kind: 'accepted', requestId: stream.requestId, tags: [...stream.tags], inUse });
  }

  /** Counts the end of a stream: a clean end frees its slot, an unclean one later. */
  closed(now: number, clean: boolean): void {
    this.#expire(now);
    this.#open -= 1;
    const countedUntil = clean ? now : now + this.#releaseDelayMs;
    if (!clean) {
      this.#uncleanEnds += 1;
      this.#staleUntil.push(countedUntil);
    }
    this.#noteBelowLimit(now);
    this.#record({ at: now, kind: 'ended', clean, countedUntil, inUse: this.#open + this.#staleUntil.length });
  }

  /** Every acceptance and end since the last reset, oldest first (at most the last 50,000). */
  entries(): LedgerEntry[] {
    return [...this.#entries];
  }

  /** Entries dropped since the last reset to keep the book bounded. */
  get droppedEntries(): number {
    return this.#droppedEntries;
  }

  rejected(reason: RejectReason): void {
    this.#rejected[reason] = (this.#rejected[reason] ?? 0) + 1;
  }

  snapshot(now: number): LedgerSnapshot {
    const inUse = this.inUse(now);
    const overLimitMs = this.#overLimitMs + (this.#overLimitSince === undefined ? 0 : now - this.#overLimitSince);
    return {
      limit: this.limit,
      enforce: this.enforce,
      open: this.#open,
      stale: this.#staleUntil.length,
      inUse,
      peak: this.#peak,
      overLimitMoments: this.#overLimitMoments,
      overLimitMs,
      accepted: this.#accepted,
      rejected: { ...this.#rejected },
      uncleanEnds: this.#uncleanEnds,
    };
  }

  /** Starts the books afresh; streams open now (and stale slots) still count. */
  reset(now: number): void {
    const inUse = this.inUse(now);
    this.#peak = inUse;
    this.#overLimitMoments = 0;
    this.#overLimitMs = 0;
    this.#overLimitSince = inUse > this.limit ? now : undefined;
    this.#accepted = 0;
    this.#rejected = {};
    this.#uncleanEnds = 0;
    this.#entries = [];
    this.#droppedEntries = 0;
  }

  #record(entry: LedgerEntry): void {
    this.#entries.push(entry);
    if (this.#entries.length > maxEntries) {
      // A tenth at a time, so a full book does not copy itself on every entry.
      const dropped = this.#entries.length - maxEntries * 0.9;
      this.#entries.splice(0, dropped);
      this.#droppedEntries += dropped;
    }
  }

  #expire(now: number): void {
    while (this.#staleUntil.length > 0 && (this.#staleUntil[0] as number) <= now) {
      // The count fell at the release time, not now: time above the limit ends there.
      const releasedAt = this.#staleUntil.shift() as number;
      this.#noteBelowLimit(releasedAt);
    }
  }

  #noteBelowLimit(at: number): void {
    if (this.#overLimitSince !== undefined && this.#open + this.#staleUntil.length <= this.limit) {
      this.#overLimitMs += Math.max(0, at - this.#overLimitSince);
      this.#overLimitSince = undefined;
    }
  }
}
