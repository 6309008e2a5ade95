/**
 * `npm run emulator -- [--port 8787] [--host 127.0.0.1] [--config emulator.yaml]`:
 * the Deepgram streaming emulator as a process, for the demo, benchmarks and trying
 * a client by hand. Without --config it serves one project, `local`, with the key
 * `local-key` and a limit of 150 streams.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { EmulatorConfigError, parseEmulatorYaml } from './config.js';
import { Emulator } from './server.js';

const usage = 'Usage: npm run emulator -- [--port 8787] [--host 127.0.0.1] [--config emulator.yaml]';

function fail(message: string): never {
  console.error(`${message}\n${usage}`);
  process.exit(2);
}

let options: { port?: string; host?: string; config?: string; help?: boolean };
try {
  ({ values: options } = parseArgs({
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      config: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  }));
} catch (error) {
  fail((error as Error).message);
}
if (options.help) {
  console.log(usage);
  process.exit(0);
}
const port = Number(options.port ?? 8787);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port must be a port number, got ${options.port}`);

let emulator: Emulator;
try {
  const input = options.config
    ? parseEmulatorYaml(readFileSync(options.config, 'utf8'))
    : { projects: [{ id: 'local', keys: ['local-key'], maxConcurrentStreams: 150 }] };
  emulator = await Emulator.start(input, { port, host: options.host ?? '127.0.0.1' });
} catch (error) {
  if (error instanceof EmulatorConfigError) fail(error.message);
  fail(`Cannot start the emulator: ${(error as Error).message}`);
}
const projects = emulator.config.projects
  .map((p) => `${p.id} (limit ${p.maxConcurrentStreams}, ${p.enforce ? 'enforcing' : 'observing'})`)
  .join(', ');
console.log(`Emulator listening on ${emulator.url} (/v1/listen, /v2/listen); projects: ${projects}`);
console.log(`Control: ${emulator.httpUrl}/stats, /metrics, /streams, /faults, POST /reset`);

let closing = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, async () => {
    if (closing) return;
    closing = true;
    await emulator.close();
    process.exit(0);
  });
}
