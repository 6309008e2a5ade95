/**
 * Loaded into every file of the unit run (`npm run test:unit`, and the first part of
 * `npm test`): a unit test starts no process and opens no socket, so a test that needs a
 * peer (the control plane, the emulator, a sidecar) fails at once, naming what it tried,
 * instead of slipping into the run that is meant to take seconds.
 */
import childProcess from 'node:child_process';
import { syncBuiltinESMExports } from 'node:module';
import net from 'node:net';

function refuse(what: string): never {
  throw new Error(
    `A unit test may not ${what}. Tests beside the code (crds/, operator/, sidecar/) are pure; ` +
      'one that needs the control plane, the emulator or a process belongs under test/.',
  );
}

/** Where a connect() or listen() call points: host:port, or a socket path. */
function target(args: unknown[]): string {
  const [first, second] = args;
  if (typeof first === 'object' && first !== null) {
    const { host, port, path } = first as { host?: string; port?: number; path?: string };
    return path ?? `${host ?? 'localhost'}:${port ?? 0}`;
  }
  return typeof second === 'string' ? `${second}:${String(first)}` : String(first);
}

// Only in the test files' own processes: the runner itself starts one process per file.
if (process.env.NODE_TEST_CONTEXT) {
  const processes = ['spawn', 'spawnSync', 'exec', 'execSync', 'execFile', 'execFileSync', 'fork'] as const;
  for (const name of processes) {
    Object.assign(childProcess, {
      [name]: (command: unknown) => refuse(`start a process (${name} ${String(command)})`),
    });
  }
  net.Socket.prototype.connect = function connect(...args: unknown[]) {
    return refuse(`open a connection (to ${target(args)})`);
  } as typeof net.Socket.prototype.connect;
  net.Server.prototype.listen = function listen(...args: unknown[]) {
    return refuse(`listen (on ${target(args)})`);
  } as typeof net.Server.prototype.listen;
  // Modules that import these by name see the refusals too.
  syncBuiltinESMExports();
}
