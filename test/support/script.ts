/**
 * Runs one of the project's TypeScript entry points as a child process, the way npm
 * scripts do, collecting everything it prints.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { forgetProcessGroup, reapProcessGroupOnExit, repoRoot } from '../cluster/process.js';
import { StopWaiting, waitFor } from './wait.js';

export interface Script {
  child: ChildProcess;
  /** stdout and stderr so far, interleaved. */
  output(): string;
  /** Resolves with the exit code (or signal) once it has exited. */
  exited: Promise<number | NodeJS.Signals>;
  /** Stops it if it still runs (SIGTERM, then SIGKILL), for `finally` blocks. */
  stop(): Promise<void>;
}

/**
 * Starts `node --import tsx <path relative to the repository> ...args` in a process group
 * of its own, known to the reaper: even a test that fails or dies leaves nothing running.
 */
export function startScript(path: string, args: string[] = [], env: NodeJS.ProcessEnv = process.env): Script {
  const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, path), ...args], {
    cwd: repoRoot,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid;
  if (pid !== undefined) reapProcessGroupOnExit(pid);
  let output = '';
  const collect = (chunk: Buffer) => {
    output += chunk;
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = once(child, 'exit').then(([code, signal]) => {
    if (pid !== undefined) forgetProcessGroup(pid);
    return (code ?? signal) as number | NodeJS.Signals;
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null || pid === undefined) return;
    const signal = (name: NodeJS.Signals) => {
      try {
        process.kill(-pid, name);
      } catch {
        // Gone already.
      }
    };
    signal('SIGTERM');
    const timer = setTimeout(() => signal('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  return { child, output: () => output, exited, stop };
}

/**
 * Waits for the first JSON log line whose message is `message` (e.g. "Started sidecar")
 * and returns it parsed; gives up at once, with the output, if the process exits first.
 */
export async function loggedLine<T>(script: Script, message: string, timeoutMs = 30_000): Promise<T> {
  const marker = `"msg":${JSON.stringify(message)}`;
  const line = await waitFor(
    `"${message}" in the log`,
    () => {
      const found = script
        .output()
        .split('\n')
        .find((l) => l.includes(marker));
      if (!found && (script.child.exitCode !== null || script.child.signalCode !== null)) {
        throw new StopWaiting(`The process exited before "${message}":\n${script.output()}`);
      }
      return found;
    },
    { timeoutMs },
  );
  return JSON.parse(line) as T;
}
