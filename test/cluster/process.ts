/**
 * Child processes that tests can start, pause, kill and always clean up: each runs in
 * its own process group with its output in a log file, and is registered with a
 * reaper process that stops it should the test process itself die.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = join(here, '..', '..');

let reaper: { stdin: Writable; process: ChildProcess } | undefined;

function reaperInput(): Writable {
  if (!reaper) {
    const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'reaper.ts')], {
      cwd: repoRoot,
      detached: true,
      stdio: ['pipe', 'ignore', 'inherit'],
    });
    child.unref();
    const stdin = child.stdin as Writable;
    // The pipe must not keep this process alive; its end is the reaper's signal.
    (stdin as unknown as { unref(): void }).unref();
    // Should the reaper be gone, there is nobody left to tell: never crash over it.
    stdin.on('error', () => {});
    reaper = { stdin, process: child };
  }
  return reaper.stdin;
}

/** Asks the reaper to stop the process group of `pid` should this process die first. */
export function reapProcessGroupOnExit(pid: number): void {
  reaperInput().write(`track ${pid}\n`);
}

/** Tells the reaper the process group of `pid` is gone. */
export function forgetProcessGroup(pid: number): void {
  reaperInput().write(`untrack ${pid}\n`);
}

/** Asks the reaper to remove `dir` should this process die before it does. */
export function reapDirectoryOnExit(dir: string): void {
  reaperInput().write(`dir ${dir}\n`);
}

/** Tells the reaper `dir` is gone already. */
export function forgetDirectory(dir: string): void {
  reaperInput().write(`forget ${dir}\n`);
}

export interface ManagedProcessOptions {
  /** Name for messages and the log file. */
  name: string;
  command: string;
  args: string[];
  /** The file stdout and stderr go to. */
  logFile: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** A child process in its own process group, stopped by `stop()` or by the reaper. */
export class ManagedProcess {
  readonly name: string;
  readonly logFile: string;
  readonly #child: ChildProcess;
  readonly #exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(options: ManagedProcessOptions) {
    this.name = options.name;
    this.logFile = options.logFile;
    const log = openSync(options.logFile, 'a');
    try {
      this.#child = spawn(options.command, options.args, {
        cwd: options.cwd ?? repoRoot,
        env: options.env ?? process.env,
        detached: true,
        stdio: ['ignore', log, log],
      });
    } finally {
      closeSync(log);
    }
    const pid = this.#child.pid;
    this.#exited = new Promise((resolve) => {
      this.#child.once('error', () => resolve({ code: -1, signal: null }));
      this.#child.once('exit', (code, signal) => resolve({ code, signal }));
    }).then((exit) => {
      this.#exit = exit as typeof this.exit;
      if (pid !== undefined) forgetProcessGroup(pid);
      return exit as { code: number | null; signal: NodeJS.Signals | null };
    });
    if (pid !== undefined) reapProcessGroupOnExit(pid);
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** How the process ended, once it has. */
  get exit(): { code: number | null; signal: NodeJS.Signals | null } | undefined {
    return this.#exit;
  }

  get running(): boolean {
    return this.#exit === undefined;
  }

  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return this.#exited;
  }

  /** Sends a signal to the whole process group. */
  signal(signal: NodeJS.Signals): void {
    if (!this.running || this.pid === undefined) return;
    try {
      process.kill(-this.pid, signal);
    } catch {
      // It ended in the meantime.
    }
  }

  /** Stops the process: SIGTERM, then SIGKILL after `graceMs`. Resolves when it has exited. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.signal('SIGCONT');
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    await this.#exited;
    clearTimeout(timer);
  }

  /** The last lines of the log, for error messages. */
  logTail(lines = 30): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }
}

/** Resolves once `emitter` emits `event`, or rejects after `ms`. */
export async function onceWithin(emitter: NodeJS.EventEmitter, event: string, ms: number): Promise<unknown[]> {
  return once(emitter, event, { signal: AbortSignal.timeout(ms) });
}
