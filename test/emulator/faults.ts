/**
 * Faults the emulator can inject, and which streams they hit. A rule matches streams
 * by project, path, model, the `tag` query parameter, the request id, or a share of
 * them chosen by a seeded generator (so runs repeat); it acts at the handshake
 * (latency, refusal, an HTTP status) or later in the stream (reset, silence, close).
 */

export type HandshakeFault = { type: 'latency'; ms: number } | { type: 'refuse' } | { type: 'status'; status: number };

export type StreamFault =
  | { type: 'reset'; afterMs: number }
  | { type: 'silence'; afterMs: number }
  | { type: 'close'; afterMs: number; code: number; reason: string };

export type FaultAction = HandshakeFault | StreamFault;

export interface FaultMatch {
  project?: string;
  path?: string;
  model?: string;
  tag?: string;
  requestId?: string;
  /** A fraction of the otherwise matching streams, 0 to 1. */
  share?: number;
}

export interface FaultRule {
  id: string;
  match: FaultMatch;
  action: FaultAction;
  /** How many more streams it may hit; unlimited when absent. */
  remaining?: number;
}

/** What a handshake or stream is, for matching. */
export interface StreamFacts {
  project: string;
  path: string;
  model: string | undefined;
  tag: string[];
  requestId: string;
}

export function isHandshakeFault(action: FaultAction): action is HandshakeFault {
  return action.type === 'latency' || action.type === 'refuse' || action.type === 'status';
}

let nextId = 1;

/** Validates one rule from configuration or the control endpoint; problems are collected, not thrown. */
export function parseFaultRule(input: unknown, path: string, problems: string[]): FaultRule {
  const fail = (message: string): FaultRule => {
    problems.push(`${path}${message}`);
    return { id: 'invalid', match: {}, action: { type: 'refuse' } };
  };
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return fail(': must be a mapping');
  const { id, match = {}, action, times } = input as Record<string, unknown>;
  for (const key of Object.keys(input)) {
    if (!['id', 'match', 'action', 'times'].includes(key)) problems.push(`${path}.${key}: unknown field`);
  }
  if (typeof match !== 'object' || match === null || Array.isArray(match)) return fail('.match: must be a mapping');
  const m = match as Record<string, unknown>;
  for (const [key, value] of Object.entries(m)) {
    if (key === 'share') {
      if (typeof value !== 'number' || value < 0 || value > 1)
        problems.push(`${path}.match.share: must be between 0 and 1`);
    } else if (['project', 'path', 'model', 'tag', 'requestId'].includes(key)) {
      if (typeof value !== 'string' || value === '') problems.push(`${path}.match.${key}: must be a non-empty string`);
    } else {
      problems.push(`${path}.match.${key}: unknown field`);
    }
  }
  if (typeof action !== 'object' || action === null) return fail('.action: is required, a mapping with a type');
  const a = action as Record<string, unknown>;
  const ms = (key: string): number => {
    const value = a[key] ?? 0;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0)
      problems.push(`${path}.action.${key}: must be a number of milliseconds`);
    return value as number;
  };
  let parsed: FaultAction;
  switch (a.type) {
    case 'latency':
      parsed = { type: 'latency', ms: ms('ms') };
      break;
    case 'refuse':
      parsed = { type: 'refuse' };
      break;
    case 'status': {
      const status = a.status ?? 503;
      if (typeof status !== 'number' || !Number.isInteger(status) || status < 400 || status > 599) {
        problems.push(`${path}.action.status: must be an HTTP error status (400-599)`);
      }
      parsed = { type: 'status', status: status as number };
      break;
    }
    case 'reset':
    case 'silence':
      parsed = { type: a.type, afterMs: ms('afterMs') };
      break;
    case 'close': {
      const code = a.code ?? 1011;
      if (
        typeof code !== 'number' ||
        !Number.isInteger(code) ||
        code < 1000 ||
        code > 4999 ||
        [1004, 1005, 1006, 1015].includes(code)
      ) {
        problems.push(`${path}.action.code: must be a close code that can be sent (1000-4999, not 1004-1006 or 1015)`);
      }
      const reason = a.reason ?? '';
      if (typeof reason !== 'string' || Buffer.byteLength(reason) > 123) {
        problems.push(`${path}.action.reason: must be a string of at most 123 bytes`);
      }
      parsed = { type: 'close', afterMs: ms('afterMs'), code: code as number, reason: reason as string };
      break;
    }
    default:
      return fail(
        `.action.type: must be one of latency, refuse, status, reset, silence, close; got ${JSON.stringify(a.type)}`,
      );
  }
  if (times !== undefined && (typeof times !== 'number' || !Number.isInteger(times) || times < 1)) {
    problems.push(`${path}.times: must be a whole number of at least 1`);
  }
  const ruleId = typeof id === 'string' && id !== '' ? id : `fault-${nextId++}`;
  return {
    id: ruleId,
    match: m as FaultMatch,
    action: parsed,
    ...(typeof times === 'number' ? { remaining: times } : {}),
  };
}

/** A small, fast, seedable generator (mulberry32). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The active rules, and the choice of the streams they hit. */
export class FaultBook {
  #rules: FaultRule[];
  readonly #random: () => number;

  constructor(rules: FaultRule[], seed: number) {
    this.#rules = [...rules];
    this.#random = seededRandom(seed);
  }

  get rules(): readonly FaultRule[] {
    return this.#rules;
  }

  add(rule: FaultRule): void {
    this.#rules = [...this.#rules.filter((r) => r.id !== rule.id), rule];
  }

  remove(id: string): boolean {
    const before = this.#rules.length;
    this.#rules = this.#rules.filter((r) => r.id !== id);
    return this.#rules.length < before;
  }

  clear(): void {
    this.#rules = [];
  }

  /** The actions that hit a new stream, each rule's use counted. Called once per handshake. */
  select(facts: StreamFacts): FaultAction[] {
    return this.#rules.filter((rule) => this.hits(rule, facts)).map((rule) => rule.action);
  }

  /** Whether `rule` hits this stream: it matches, the share's draw falls in, and it has uses left (one is used). */
  hits(rule: FaultRule, facts: StreamFacts): boolean {
    if (!matches(rule.match, facts)) return false;
    if (rule.remaining !== undefined && rule.remaining <= 0) return false;
    if (rule.match.share !== undefined && this.#random() >= rule.match.share) return false;
    if (rule.remaining !== undefined) {
      rule.remaining -= 1;
      if (rule.remaining <= 0) this.remove(rule.id);
    }
    return true;
  }
}

/** Whether a rule's match fits a stream; the share is left to the caller. */
export function matches(match: FaultMatch, facts: StreamFacts): boolean {
  return (
    (match.project === undefined || match.project === facts.project) &&
    (match.path === undefined || match.path === facts.path) &&
    (match.model === undefined || match.model === facts.model) &&
    (match.tag === undefined || facts.tag.includes(match.tag)) &&
    (match.requestId === undefined || match.requestId === facts.requestId)
  );
}
