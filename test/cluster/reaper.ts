/**
 * The reaper outlives whatever test process started it. It reads commands on stdin:
 * `track <pid>` and `untrack <pid>` for process groups, `dir <path>` for temporary
 * directories. When stdin closes, because its parent stopped or died (even by
 * SIGKILL), it stops every tracked process group and removes every directory.
 */
import { rmSync } from 'node:fs';
import { createInterface } from 'node:readline';

const groups = new Set<number>();
const dirs = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(-pid, name);
  } catch {
    // Already gone.
  }
}

async function reap(): Promise<void> {
  for (const pid of groups) {
    signal(pid, 'SIGCONT');
    signal(pid, 'SIGTERM');
  }
  const deadline = Date.now() + 5000;
  while ([...groups].some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const pid of groups) signal(pid, 'SIGKILL');
  // Remove the directories only once nothing can write into them any more.
  const killDeadline = Date.now() + 5000;
  while ([...groups].some(alive) && Date.now() < killDeadline) await new Promise((r) => setTimeout(r, 50));
  for (const dir of dirs) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // Nothing more a reaper can do; the next directory may still go.
    }
  }
  process.exit(0);
}

// The parent's terminal signals are not ours to obey: only the end of stdin is.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => {});
process.on('SIGHUP', () => {});

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const [command, argument = ''] = [line.slice(0, line.indexOf(' ')), line.slice(line.indexOf(' ') + 1)];
  if (command === 'track') groups.add(Number(argument));
  else if (command === 'untrack') groups.delete(Number(argument));
  else if (command === 'dir') dirs.add(argument);
  else if (command === 'forget') dirs.delete(argument);
});
lines.on('close', () => void reap());
