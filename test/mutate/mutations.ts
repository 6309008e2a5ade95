/**
 * The safety rules of the lease protocol and the relay, each as the exact code that
 * enforces it and what is left when it is removed. `npm run mutate` applies them one at
 * a time to a copy of the source; the shipped code has no switches for them.
 */
export interface Mutation {
  rule: string;
  /** What the mutant lacks, in words. */
  removed: string;
  file: string;
  find: string;
  replace: string;
  /** The tests that must notice (default: the allocation loop's property tests). */
  tests?: string[];
}

const closeHandshake = ['test/sidecar/close-handshake.test.ts'];

export const mutations: Mutation[] = [
  {
    rule: 'clamp',
    removed: 'a raise is not clamped to what the reservations leave free',
    file: 'operator/allocate.ts',
    find: 'const grant = Math.min(targets.get(m.name) as number, free + held);',
    replace: 'const grant = targets.get(m.name) as number;',
  },
  {
    rule: 'session clamp',
    removed: 'a session-rate raise is not clamped to what the session reservations leave free',
    file: 'operator/allocate.ts',
    find: 'const want = Math.min(target, free + held);',
    replace: 'const want = target;',
  },
  {
    rule: 'unacknowledged reservation',
    removed: 'an unacknowledged grant reserves only what was acknowledged',
    file: 'operator/allocate.ts',
    find: 'if (!acked) return Math.max(spec, enforced, member.inUse);',
    replace: '',
  },
  {
    rule: 'one unacknowledged epoch',
    removed: 'a new grant is written over one not yet acknowledged',
    file: 'operator/allocate.ts',
    find: 'return !member.hasLease || member.ack?.epoch === member.epoch;',
    replace: 'return true;',
  },
  {
    rule: 'pending writes',
    removed: 'a grant just written does not count until the cache shows it',
    file: 'operator/lease-book.ts',
    find: 'record.pending = { epoch, grant };',
    replace: '',
  },
  {
    rule: 'leadership grace',
    removed: 'a new leader raises at once',
    file: 'operator/plan-budget.ts',
    find: 'state.leadership.mayRaise(timings.leaseDurationMs)',
    replace: 'state.leadership.mayRaise(0)',
  },
  {
    rule: 'gone hold',
    removed: "a vanished pod's slots are freed at once",
    file: 'operator/lease-book.ts',
    find: 'if (now - record.goneAt >= hold) names.push(name);',
    replace: 'names.push(name);',
  },
  {
    rule: 'stale-gone hold',
    removed: 'a pod that vanished while stale is held no longer than any other',
    file: 'operator/lease-book.ts',
    find: 'const hold = this.timings.releaseDelayMs + (record.goneStale ? this.timings.staleGoneHoldMs : 0);',
    replace: 'const hold = this.timings.releaseDelayMs;',
  },
  {
    rule: 'restart hold',
    removed: 'a restarted sidecar holds nothing of what its last run had open',
    file: 'sidecar/lease-sync.ts',
    find: 'gate.holdStale(held, now);',
    replace: '',
  },
  {
    rule: 'restart session hold',
    removed: "a restarted sidecar does not count its last run's starts as still in the window",
    file: 'sidecar/lease-sync.ts',
    find: 'gate.holdSessions(status.sessionWindow, quota, now);',
    replace: '',
  },
  {
    rule: 'window hold',
    removed: 'capacity a pod gave up is free at once, while its starts are still in the window',
    file: 'operator/allocate.ts',
    find: 'return Math.max(spec, member.ack?.grant.newSessionsPerMinute ?? 0, member.sessionsHeld ?? 0);',
    replace: 'return Math.max(spec, member.ack?.grant.newSessionsPerMinute ?? 0);',
  },
  {
    rule: 'gone session hold',
    removed: "a vanished pod's lease goes before its starts left the window",
    file: 'operator/lease-book.ts',
    find: 'return Math.max(slots, this.timings.sessionWindowMs);',
    replace: 'return slots;',
  },
  {
    rule: 'made starts',
    removed: "the model's floor counts starts a restarted sidecar only holds for its last run as made",
    file: 'operator/lease-book.ts',
    find: 'const made = record.sawChange ? record.sessionWindowMade : undefined;',
    replace: 'const made = record.sawChange ? record.sessionWindow : undefined;',
  },
  {
    rule: 'first-sight report',
    removed: "the model's floor reads a report found at first sight as just written",
    file: 'operator/lease-book.ts',
    find: 'const made = record.sawChange ? record.sessionWindowMade : undefined;',
    replace: 'const made = record.sessionWindowMade;',
    tests: ['operator/lease-book.test.ts'],
  },
  {
    rule: 'autoscale ceiling',
    removed: 'the model judges a step down against its own limit, not the highest the provider may hold',
    file: 'operator/session-model.ts',
    find: "if (fellFrom <= range.high) low = Math.min(low, after(fellFrom, least, 'least'));",
    replace: '',
    tests: ['operator/session-model.test.ts', 'test/operator/allocation-properties.test.ts'],
  },
  {
    rule: 'autoscale use',
    removed: "the model's low end steps on the most use reported, not the least",
    file: 'operator/session-model.ts',
    find: 'const least = use.least;',
    replace: 'const least = use.most;',
  },
  {
    rule: 'autoscale window',
    removed:
      'a phase whose window is open counts only once the window has closed, as if the provider had not stepped yet',
    file: 'operator/session-model.ts',
    find: 'const range = phase.seen ? union(phase.range, this.#next(auto, phase.range, phase.seen)) : phase.range;',
    replace: 'const range = phase.range;',
    tests: ['operator/session-model.test.ts', 'test/operator/allocation-properties.test.ts'],
  },
  {
    rule: 'autoscale phases',
    removed: 'the model assumes the provider steps an interval after the operator started',
    file: 'operator/session-model.ts',
    find: 'const count = Math.min(maxPhases, Math.max(1, Math.round(interval / phaseMs)));',
    replace: 'const count = 1;',
  },
  {
    rule: 'fence',
    removed: 'a sidecar that cannot write its status keeps admitting',
    file: 'sidecar/lease-sync.ts',
    find: 'return this.#lastSentAt === undefined || now - this.#lastSentAt >= this.fenceAfterMs;',
    replace: 'return false;',
  },
  {
    rule: 'fence margin',
    removed: 'the sidecar fences a margin after the lease duration instead of before',
    file: 'crds/api/lease-protocol.ts',
    find: 'const fenceAfterMs = Math.floor(leaseDurationMs - margin);',
    replace: 'const fenceAfterMs = Math.floor(leaseDurationMs + margin);',
  },
  {
    rule: 'release margin',
    removed: 'holds of unclean ends end exactly at the release delay',
    file: 'crds/api/lease-protocol.ts',
    find: 'export const releaseMarginMs = 2000;',
    replace: 'export const releaseMarginMs = 0;',
  },
  {
    rule: 'close answer',
    removed: "the sidecar leaves the upstream's close for the client to answer",
    file: 'sidecar/relay.ts',
    find: 'this.#sendToUpstream(this.#closeAnswer);',
    replace: '',
    tests: closeHandshake,
  },
  {
    rule: 'clean only when complete',
    removed: 'an upstream close counts as a clean end even when it was never answered',
    file: 'sidecar/relay.ts',
    find: 'clean: this.#upstreamCloseReceived && this.#closeFrameWrittenUpstream,',
    replace: 'clean: this.#upstreamCloseReceived,',
    tests: closeHandshake,
  },
];
