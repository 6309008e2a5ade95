/**
 * The emulator's configuration: projects (keys, limits, new-session budget, release
 * delay, enforcing or observing), protocol timings, and faults. Read from YAML or
 * given as an object; every problem is reported with its path.
 */
import { parse } from 'yaml';
import type { FaultRule } from './faults.js';
import { parseFaultRule } from './faults.js';
import type { SessionLimitConfig } from './session-limit.js';

export interface ProjectConfig {
  id: string;
  /** API keys (and bearer tokens) that authenticate as this project. */
  keys: string[];
  maxConcurrentStreams: number;
  /** false: admit everything and only record (the referee's observing mode). */
  enforce: boolean;
  /** How long a stream that ended without a close handshake keeps its slot. */
  releaseDelaySeconds: number;
  newSessions?: SessionLimitConfig & {
    /** How a start over the limit is refused: HTTP 429, or an accepted handshake closed with 1008. */
    rejectWith: 'handshake' | 'close';
  };
}

export interface EmulatorConfig {
  projects: ProjectConfig[];
  flux: {
    /** A Flux stream that receives no audio this long ends with an Error message and close 1011. */
    idleTimeoutSeconds: number;
    /** Audio per TurnInfo Update. */
    updateIntervalSeconds: number;
    /** Audio per synthetic turn. */
    turnSeconds: number;
  };
  nova: {
    /** A v1 stream that receives neither audio nor text this long closes with 1011 NET-0001. */
    idleTimeoutSeconds: number;
    /** Audio per Results message. */
    resultIntervalSeconds: number;
  };
  /** Largest frame accepted, in bytes. */
  maxPayloadBytes: number;
  faults: FaultRule[];
  /** Seeds the choice of streams for faults that target a share of them. */
  seed: number;
}

/** A configuration that cannot be used; `problems` lists each with its path. */
export class EmulatorConfigError extends Error {
  readonly code = 'SLUICE_E_EMULATOR_CONFIG';

  constructor(readonly problems: string[]) {
    super(`Invalid emulator configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'EmulatorConfigError';
  }
}

type Input = Record<string, unknown>;

/** Reads typed fields from untrusted input, collecting problems instead of throwing at the first. */
export class FieldReader {
  constructor(
    readonly problems: string[],
    readonly path: string,
    readonly input: Input,
  ) {}

  at(key: string): FieldReader | undefined {
    const value = this.input[key];
    if (value === undefined) return undefined;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.problems.push(`${this.path}${key}: must be a mapping`);
      return undefined;
    }
    return new FieldReader(this.problems, `${this.path}${key}.`, value as Input);
  }

  number(key: string, fallback: number | undefined, bounds: { min: number; max: number; integer?: boolean }): number {
    const value = this.input[key] ?? fallback;
    const where = `${this.path}${key}`;
    if (value === undefined) {
      this.problems.push(`${where}: is required`);
      return Number.NaN;
    }
    if (typeof value !== 'number' || Number.isNaN(value)) {
      this.problems.push(`${where}: must be a number, got ${JSON.stringify(value)}`);
    } else if ((bounds.integer ?? true) && !Number.isInteger(value)) {
      this.problems.push(`${where}: must be a whole number, got ${value}`);
    } else if (value < bounds.min || value > bounds.max) {
      this.problems.push(`${where}: must be between ${bounds.min} and ${bounds.max}, got ${value}`);
    }
    return value as number;
  }

  string(key: string, fallback?: string): string {
    const value = this.input[key] ?? fallback;
    if (typeof value !== 'string' || value === '') {
      this.problems.push(`${this.path}${key}: must be a non-empty string`);
      return '';
    }
    return value;
  }

  boolean(key: string, fallback: boolean): boolean {
    const value = this.input[key] ?? fallback;
    if (typeof value !== 'boolean') this.problems.push(`${this.path}${key}: must be true or false`);
    return value as boolean;
  }

  oneOf<T extends string>(key: string, fallback: T, allowed: readonly T[]): T {
    const value = this.input[key] ?? fallback;
    if (!allowed.includes(value as T)) {
      this.problems.push(`${this.path}${key}: must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
    }
    return value as T;
  }

  list(key: string): unknown[] {
    const value = this.input[key];
    if (value === undefined) return [];
    if (!Array.isArray(value)) {
      this.problems.push(`${this.path}${key}: must be a list`);
      return [];
    }
    return value;
  }

  unknownKeys(known: string[]): void {
    for (const key of Object.keys(this.input)) {
      if (!known.includes(key)) this.problems.push(`${this.path}${key}: unknown field`);
    }
  }
}

function readProject(reader: FieldReader): ProjectConfig {
  reader.unknownKeys(['id', 'keys', 'maxConcurrentStreams', 'enforce', 'releaseDelaySeconds', 'newSessions']);
  const keys = reader.list('keys');
  if (keys.length === 0 || !keys.every((k) => typeof k === 'string' && k !== '')) {
    reader.problems.push(`${reader.path}keys: must be a non-empty list of non-empty strings`);
  }
  const project: ProjectConfig = {
    id: reader.string('id'),
    keys: keys as string[],
    maxConcurrentStreams: reader.number('maxConcurrentStreams', undefined, { min: 1, max: 10_000_000 }),
    enforce: reader.boolean('enforce', true),
    releaseDelaySeconds: reader.number('releaseDelaySeconds', 10, { min: 0, max: 3600, integer: false }),
  };
  const sessions = reader.at('newSessions');
  if (sessions) {
    sessions.unknownKeys(['perMinute', 'rejectWith', 'autoscale']);
    const perMinute = sessions.number('perMinute', undefined, { min: 1, max: 10_000_000 });
    const autoscale = sessions.at('autoscale');
    project.newSessions = {
      perMinute,
      rejectWith: sessions.oneOf('rejectWith', 'handshake', ['handshake', 'close'] as const),
    };
    if (autoscale) {
      autoscale.unknownKeys([
        'scaleUpAtPercent',
        'stepPercent',
        'intervalSeconds',
        'scaleDownBelowPercent',
        'maxPerMinute',
      ]);
      project.newSessions.autoscale = {
        scaleUpAtPercent: autoscale.number('scaleUpAtPercent', 70, { min: 1, max: 100 }),
        stepPercent: autoscale.number('stepPercent', 10, { min: 1, max: 100 }),
        intervalSeconds: autoscale.number('intervalSeconds', 60, { min: 0.01, max: 3600, integer: false }),
        scaleDownBelowPercent: autoscale.number('scaleDownBelowPercent', 50, { min: 0, max: 99 }),
        maxPerMinute: autoscale.number('maxPerMinute', undefined, { min: perMinute || 1, max: 10_000_000 }),
      };
      if (project.newSessions.autoscale.scaleDownBelowPercent >= project.newSessions.autoscale.scaleUpAtPercent) {
        autoscale.problems.push(`${autoscale.path}scaleDownBelowPercent: must be below scaleUpAtPercent`);
      }
    }
  }
  return project;
}

/** Builds a complete configuration from a partial one, or throws EmulatorConfigError. */
export function readEmulatorConfig(input: unknown): EmulatorConfig {
  const problems: string[] = [];
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new EmulatorConfigError(['the configuration must be a mapping']);
  }
  const root = new FieldReader(problems, '', input as Input);
  root.unknownKeys(['projects', 'flux', 'nova', 'maxPayloadBytes', 'faults', 'seed']);
  const projects = root.list('projects').map((item, index) => {
    const path = `projects[${index}].`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      problems.push(`${path.slice(0, -1)}: must be a mapping`);
      return undefined;
    }
    return readProject(new FieldReader(problems, path, item as Input));
  });
  if (projects.length === 0) problems.push('projects: at least one project is required');
  const flux = root.at('flux') ?? new FieldReader(problems, 'flux.', {});
  flux.unknownKeys(['idleTimeoutSeconds', 'updateIntervalSeconds', 'turnSeconds']);
  const nova = root.at('nova') ?? new FieldReader(problems, 'nova.', {});
  nova.unknownKeys(['idleTimeoutSeconds', 'resultIntervalSeconds']);
  const config: EmulatorConfig = {
    projects: projects.filter((p): p is ProjectConfig => p !== undefined),
    flux: {
      idleTimeoutSeconds: flux.number('idleTimeoutSeconds', 30, { min: 0.05, max: 3600, integer: false }),
      updateIntervalSeconds: flux.number('updateIntervalSeconds', 0.25, { min: 0.01, max: 10, integer: false }),
      turnSeconds: flux.number('turnSeconds', 2, { min: 0.1, max: 600, integer: false }),
    },
    nova: {
      idleTimeoutSeconds: nova.number('idleTimeoutSeconds', 10, { min: 0.05, max: 3600, integer: false }),
      resultIntervalSeconds: nova.number('resultIntervalSeconds', 1, { min: 0.01, max: 60, integer: false }),
    },
    maxPayloadBytes: root.number('maxPayloadBytes', 1024 * 1024, { min: 1024, max: 64 * 1024 * 1024 }),
    faults: root.list('faults').map((item, index) => parseFaultRule(item, `faults[${index}]`, problems)),
    seed: root.number('seed', 1, { min: 0, max: 2 ** 32 - 1 }),
  };
  const seenIds = new Set<string>();
  const seenKeys = new Map<string, string>();
  for (const project of config.projects) {
    if (seenIds.has(project.id)) problems.push(`projects: project id ${JSON.stringify(project.id)} appears twice`);
    seenIds.add(project.id);
    for (const key of project.keys) {
      const owner = seenKeys.get(key);
      if (owner !== undefined) problems.push(`projects: a key is shared by projects ${owner} and ${project.id}`);
      seenKeys.set(key, project.id);
    }
  }
  if (problems.length > 0) throw new EmulatorConfigError(problems);
  return config;
}

/** Parses YAML text into a configuration's input, for `readEmulatorConfig` or `Emulator.start`. */
export function parseEmulatorYaml(text: string): unknown {
  try {
    return parse(text) ?? {};
  } catch (error) {
    throw new EmulatorConfigError([`not valid YAML: ${(error as Error).message.split('\n')[0]}`]);
  }
}
