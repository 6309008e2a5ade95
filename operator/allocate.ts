/**
 * The allocation core: given a budget and what the operator knows of each pod's lease,
 * decide which grants to write. Pure: no I/O, no clock of its own. It enforces the lease
 * protocol's arithmetic — reservations, take before give, one unacknowledged epoch at
 * most — so that the streams the fleet may open never exceed the limit.
 */

/** What a pod may use of one budget. */
export interface Grant {
  concurrency: number;
  /** New streams the pod may start in any 61 s; absent when the budget has no new-session limit. */
  newSessionsPerMinute?: number;
}

export interface AllocationPolicy {
  /** maxConcurrentStreams. */
  limit: number;
  minPerPod: number;
  strategy: 'Demand' | 'Equal';
  /** The new-session budget per minute as the operator models it now; absent when there is none. */
  sessionsPerMinute?: number;
}

/**
 * Where a pod stands with the budget:
 * - `active`: selected, running, may be given more;
 * - `draining`: terminating, no longer selected, or the budget is going: its grant goes to 0;
 * - `gone`: the pod is gone but its slots may still count upstream: held at its last reservation.
 */
export type MemberPhase = 'active' | 'draining' | 'gone';

/** One pod's lease, as the operator sees it. */
export interface Member {
  /** The lease's name (stable key). */
  name: string;
  phase: MemberPhase;
  /** False until the lease exists. */
  hasLease: boolean;
  /** The grant in the lease's spec, and its epoch. */
  spec: Grant;
  epoch: number;
  /** What the sidecar acknowledged: the epoch and the grant it enforces. Absent before its first ack. */
  ack?: { epoch: number; grant: Grant };
  /** Open streams plus held slots, as last reported. */
  inUse: number;
  /** Smoothed demand (streams wanted). */
  demand: number;
  /** No status change observed for the lease duration plus a margin. */
  stale: boolean;
  /** Starts still inside the pod's new-session window, by its last report. */
  sessionsHeld?: number;
  /** Of those, the starts the provider surely still counts. */
  sessionsCounted?: number;
  /** New streams the pod wants per minute (smoothed). */
  sessionDemand?: number;
}

export interface AllocationOptions {
  /** False while a new leader waits out a lease duration, or its renewal is late: only lowering then. */
  mayRaise: boolean;
}

export interface Allocation {
  /** New grants to write, by lease name (each at epoch + 1; or the first, for a lease to create). */
  writes: Map<string, Grant>;
  /** The target of every active member, before clamping. */
  targets: Map<string, number>;
  /** Σ reservations now, before any write lands. */
  reserved: number;
  /** Σ grants of the active and draining members as they will stand after the writes. */
  allocated: number;
  /** Reservations exceed the limit (the limit was lowered below what is held). */
  overCommitted: boolean;
  /** A pod's new-session share waits for starts of others to leave their windows. */
  sessionsWaiting: boolean;
}

/** True when the lease's current epoch is acknowledged, so a new grant may be written. */
export function writable(member: Member): boolean {
  return !member.hasLease || member.ack?.epoch === member.epoch;
}

/** The concurrency a pod may be using or may start using without asking again. */
export function reservation(member: Member): number {
  const enforced = member.ack?.grant.concurrency ?? 0;
  const acked = member.hasLease && member.ack?.epoch === member.epoch;
  const spec = member.hasLease ? member.spec.concurrency : 0;
  if (member.stale || member.phase === 'gone') return Math.max(spec, enforced, member.inUse);
  // Until the sidecar acknowledges a grant it may enforce either the old one or the new.
  if (!acked) return Math.max(spec, enforced, member.inUse);
  if (member.phase === 'draining') return Math.max(enforced, member.inUse);
  return Math.max(enforced, member.inUse);
}

/**
 * The new-session capacity a pod holds: the most starts it may have inside the provider's
 * window from now on. A pod starts only while its window holds less than its quota, so
 * that is its quota (either grant's until it acknowledges one), or the starts it reported
 * still inside its window when those are more: capacity it gave up frees as they leave.
 */
export function sessionReservation(member: Member): number {
  const spec = member.hasLease ? (member.spec.newSessionsPerMinute ?? 0) : 0;
  return Math.max(spec, member.ack?.grant.newSessionsPerMinute ?? 0, member.sessionsHeld ?? 0);
}

/**
 * Splits `pool` across demands: each gets its demand while the pool lasts (max-min fair
 * when it does not), a floor of `minPerPod` from what is spare, and the rest as headroom
 * in equal parts. Integers; Σ result ≤ pool.
 */
export function waterFill(demands: readonly number[], pool: number, minPerPod: number): number[] {
  const n = demands.length;
  const result = new Array<number>(n).fill(0);
  if (n === 0 || pool <= 0) return result;
  const total = demands.reduce((a, b) => a + b, 0);
  if (total <= pool) {
    for (let i = 0; i < n; i++) result[i] = demands[i] as number;
    let spare = pool - total;
    // Floors first, so an idle pod can start a stream without a round trip…
    for (let i = 0; i < n && spare > 0; i++) {
      const lift = Math.min(Math.max(0, minPerPod - (result[i] as number)), spare);
      result[i] = (result[i] as number) + lift;
      spare -= lift;
    }
    // …then headroom, equal parts, the odd ones to the pods that want most.
    const each = Math.floor(spare / n);
    for (let i = 0; i < n; i++) result[i] = (result[i] as number) + each;
    spare -= each * n;
    for (const i of byDemand(demands)) {
      if (spare <= 0) break;
      result[i] = (result[i] as number) + 1;
      spare -= 1;
    }
    return result;
  }
  // Not enough for everyone: the level L such that Σ min(dᵢ, L) fills the pool. Pods that
  // want less than L (idle ones included) get what they want: their minimum is lent.
  const sorted = [...demands].sort((a, b) => a - b);
  let remaining = pool;
  let level = -1;
  for (let k = 0; k < n; k++) {
    const d = sorted[k] as number;
    const share = Math.floor(remaining / (n - k));
    if (d <= share) {
      remaining -= d;
      continue;
    }
    level = share;
    break;
  }
  let spare = pool;
  for (let i = 0; i < n; i++) {
    result[i] = level < 0 ? (demands[i] as number) : Math.min(demands[i] as number, level);
    spare -= result[i] as number;
  }
  for (const i of byDemand(demands)) {
    if (spare <= 0) break;
    if ((demands[i] as number) > (result[i] as number)) {
      result[i] = (result[i] as number) + 1;
      spare -= 1;
    }
  }
  return result;
}

function byDemand(demands: readonly number[]): number[] {
  return demands.map((_, i) => i).sort((a, b) => (demands[b] as number) - (demands[a] as number) || a - b);
}

function equalSplit(n: number, pool: number): number[] {
  if (n === 0 || pool <= 0) return new Array<number>(n).fill(0);
  const each = Math.floor(pool / n);
  return Array.from({ length: n }, (_, i) => each + (i < pool - each * n ? 1 : 0));
}

/**
 * Decides the grants to write for one budget. Lowering is always allowed (it frees
 * nothing until acknowledged); raising only into capacity every reservation leaves free,
 * most starved pod first. Small moves are not written unless someone needs them, so the
 * API is not written on every flicker of demand.
 */
export function allocate(policy: AllocationPolicy, members: readonly Member[], options: AllocationOptions): Allocation {
  const reservations = new Map(members.map((m) => [m.name, reservation(m)]));
  const reserved = sum(reservations.values());
  const active = members.filter((m) => m.phase === 'active' && !m.stale);
  const fixed = members.filter((m) => m.phase !== 'active' || m.stale);
  const pool = Math.max(0, policy.limit - sum(fixed.map((m) => reservations.get(m.name) as number)));

  const targetList =
    policy.strategy === 'Equal'
      ? equalSplit(active.length, pool)
      : waterFill(
          active.map((m) => m.demand),
          pool,
          policy.minPerPod,
        );
  const targets = new Map(active.map((m, i) => [m.name, targetList[i] as number]));

  const writes = new Map<string, Grant>();
  const band = Math.max(1, Math.ceil(policy.limit * 0.02));
  const current = (m: Member) => (m.hasLease ? m.spec.concurrency : 0);
  const starving = (m: Member) => m.demand >= current(m) && (targets.get(m.name) ?? 0) > current(m);
  const anyStarving = active.some((m) => writable(m) && starving(m));

  const sessions = sessionPlan(policy, members, options);

  // Lower first (draining pods to 0, active pods above their target). When the limit was
  // lowered below what is reserved, a pod keeps no more than fits beside everyone else's
  // reservation as it stands now, so that no admission goes over once all have heard.
  const over = reserved > policy.limit;
  for (const m of members) {
    if (m.phase === 'gone' || !writable(m)) continue;
    const now = current(m);
    const others = reserved - (reservations.get(m.name) as number);
    const fits = Math.max(0, policy.limit - others);
    const target = Math.min(m.phase === 'draining' ? 0 : (targets.get(m.name) ?? now), fits);
    const lower = target < now && (m.phase === 'draining' || over || anyStarving || now - target >= band);
    const sessionCut = sessions.cuts.get(m.name);
    if (lower || (sessionCut !== undefined && m.hasLease)) {
      writes.set(m.name, withSessions(lower ? target : now, sessionCut ?? sessionsOf(m), policy));
    }
  }

  // Then raise, into what the reservations leave free, most starved first.
  let free = policy.limit - reserved;
  if (options.mayRaise) {
    const candidates = active
      .filter((m) => writable(m) && !writes.has(m.name))
      .filter((m) => {
        const target = targets.get(m.name) as number;
        return target > current(m) && (starving(m) || target - current(m) >= band || !m.hasLease);
      })
      .sort((a, b) => deficit(b) - deficit(a) || a.name.localeCompare(b.name));
    function deficit(m: Member): number {
      return (starving(m) ? 1e9 : 0) + (targets.get(m.name) as number) - current(m);
    }
    for (const m of candidates) {
      const held = reservations.get(m.name) as number;
      const grant = Math.min(targets.get(m.name) as number, free + held);
      if (grant <= current(m)) continue;
      free -= Math.max(grant, m.inUse) - held;
      writes.set(m.name, withSessions(grant, sessions.raises.get(m.name) ?? sessionsOf(m), policy));
    }
  }
  // Leases still to create get their first grant even when it is 0, so the sidecar has something to acknowledge.
  for (const m of active) {
    if (!m.hasLease && !writes.has(m.name)) writes.set(m.name, withSessions(0, 0, policy));
  }
  for (const m of sessions.raiseOnly) {
    if (!writes.has(m.name) && m.hasLease) {
      const grant = sessions.raises.get(m.name);
      if (grant) writes.set(m.name, withSessions(current(m), grant, policy));
    }
  }

  let allocated = 0;
  for (const m of members) {
    if (m.phase === 'gone') continue;
    allocated += writes.get(m.name)?.concurrency ?? current(m);
  }
  return {
    writes,
    targets,
    reserved,
    allocated,
    overCommitted: reserved > policy.limit,
    sessionsWaiting: sessions.waiting,
  };
}

function sessionsOf(m: Member): number {
  return m.spec.newSessionsPerMinute ?? 0;
}

function withSessions(concurrency: number, sessions: number, policy: AllocationPolicy): Grant {
  if (policy.sessionsPerMinute === undefined) return { concurrency };
  return { concurrency, newSessionsPerMinute: sessions };
}

/**
 * The new-session budget, split by demand like the concurrency (water-filled over each
 * pod's recent rate of wanted starts, a floor of one each, the rest as headroom). Cuts
 * are written at once; raises go only into what every pod's session reservation leaves
 * free, so capacity a pod gave up is handed on as its starts leave its window.
 */
function sessionPlan(
  policy: AllocationPolicy,
  members: readonly Member[],
  options: AllocationOptions,
): { cuts: Map<string, number>; raises: Map<string, number>; raiseOnly: Member[]; waiting: boolean } {
  const cuts = new Map<string, number>();
  const raises = new Map<string, number>();
  const raiseOnly: Member[] = [];
  const perMinute = policy.sessionsPerMinute;
  if (perMinute === undefined) return { cuts, raises, raiseOnly, waiting: false };
  const active = members.filter((m) => m.phase === 'active' && !m.stale);
  const activeNames = new Set(active.map((m) => m.name));
  const fixedHeld = sum(members.filter((m) => !activeNames.has(m.name)).map(sessionReservation));
  const pool = Math.max(0, perMinute - fixedHeld);
  const shares = waterFill(
    active.map((m) => m.sessionDemand ?? 0),
    pool,
    1,
  );
  const shareOf = new Map(active.map((m, i) => [m.name, shares[i] as number]));
  const band = Math.max(1, Math.ceil(perMinute * 0.02));
  const starving = (m: Member) => (m.sessionDemand ?? 0) >= sessionsOf(m) && (shareOf.get(m.name) ?? 0) > sessionsOf(m);
  const anyStarving = active.some((m) => writable(m) && starving(m));

  for (const m of members) {
    if (m.phase === 'gone' || !writable(m) || !m.hasLease) continue;
    const want = shareOf.get(m.name) ?? 0;
    const now = sessionsOf(m);
    if (want < now && (!activeNames.has(m.name) || anyStarving || now - want >= band)) cuts.set(m.name, want);
  }
  let free = perMinute - sum(members.map(sessionReservation));
  let waiting = false;
  if (options.mayRaise) {
    const candidates = active
      .filter((m) => writable(m) && !cuts.has(m.name))
      .filter((m) => {
        const want = shareOf.get(m.name) as number;
        const now = m.hasLease ? sessionsOf(m) : 0;
        return want > now && (starving(m) || want - now >= band || now === 0);
      })
      .sort(
        (a, b) =>
          Number(starving(b)) - Number(starving(a)) ||
          (shareOf.get(b.name) as number) - sessionsOf(b) - ((shareOf.get(a.name) as number) - sessionsOf(a)) ||
          a.name.localeCompare(b.name),
      );
    for (const m of candidates) {
      const held = sessionReservation(m);
      const now = m.hasLease ? sessionsOf(m) : 0;
      const target = shareOf.get(m.name) as number;
      const want = Math.min(target, free + held);
      if (want < target) waiting = true;
      if (want <= now) continue;
      free -= Math.max(want, held) - held;
      raises.set(m.name, want);
      raiseOnly.push(m);
    }
  }
  return { cuts, raises, raiseOnly, waiting };
}

function sum(values: Iterable<number>): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}
