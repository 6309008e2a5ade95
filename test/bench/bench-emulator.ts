/**
 * The emulator as benchmarks run it: its own process, pinned to one core, observing
 * only (no limit gets in the way), with the Flux timings a benchmark asks for.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts } from '../cluster/control-plane.js';
import { ManagedProcess } from '../cluster/process.js';
import { waitFor } from '../support/wait.js';

export async function startBenchEmulator(
  dir: string,
  options: { core: number; flux: Record<string, number> },
): Promise<{ port: number; process: ManagedProcess }> {
  const config = join(dir, 'emulator.yaml');
  writeFileSync(
    config,
    `projects:\n  - {id: bench, keys: [bench-key], maxConcurrentStreams: 1000000, enforce: false}\nflux: ${JSON.stringify(options.flux)}\n`,
  );
  const [port] = (await freePorts(1)) as [number];
  const emulator = new ManagedProcess({
    name: 'emulator',
    command: 'taskset',
    args: [
      '-c',
      String(options.core),
      process.execPath,
      '--import',
      'tsx',
      'test/emulator/main.ts',
      '--port',
      String(port),
      '--config',
      config,
    ],
    logFile: join(dir, 'emulator.log'),
  });
  try {
    await waitFor('the emulator to listen', () => fetch(`http://127.0.0.1:${port}/stats`).then((r) => r.ok), {
      timeoutMs: 20_000,
    });
  } catch (error) {
    await emulator.stop();
    throw error;
  }
  return { port, process: emulator };
}
