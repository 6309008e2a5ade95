/**
 * Runs one of the project's TypeScript entry points as a child process, the way npm
 * scripts do, collecting everything it prints.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../cluster/process.js';

export interface Script {
  child: ChildProcess;
  /** stdout and stderr so far, interleaved. */
  output(): string;
}

/** Starts `node --import tsx <path relative to the repository> ...args`. */
export function startScript(path: string, args: string[] = [], env: NodeJS.ProcessEnv = process.env): Script {
  const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, path), ...args], {
    cwd: repoRoot,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (chunk: Buffer) => {
    output += chunk;
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  return { child, output: () => output };
}
