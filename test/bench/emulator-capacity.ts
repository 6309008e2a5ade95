/**
 * How many concurrent Flux-like streams one emulator process sustains on one core
 * with its messages on time. The emulator is pinned to core 0, the load generator to
 * core 1; the stream count rises step by step until TurnInfo messages come late.
 */

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../cluster/process.js';
import { waitFor } from '../support/wait.js';
import { startBenchEmulator } from './bench-emulator.js';
import { cpuSeconds } from './proc.js';

const run = promisify(execFile);

/** A TurnInfo is on time when it arrives within this long of the audio that completed it. */
const onTimeP99Ms = 100;
const steps = [500, 1000, 1500, 2000, 2250, 2500, 3000, 3500, 4000];

export async function emulatorCapacity(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-'));
  const { port, process: emulator } = await startBenchEmulator(dir, { core: 0, flux: { idleTimeoutSeconds: 60 } });
  const base = `http://127.0.0.1:${port}`;
  try {
    console.log(
      '\nEmulator capacity: Flux-like streams (80 ms frames of 2,560 bytes, real time); emulator on core 0, load on core 1',
    );
    console.log('streams  open  TurnInfo/s  lag p50 ms  lag p99 ms  lag max ms  emulator CPU  on time');
    let sustained = 0;
    for (const streams of steps) {
      const before = { cpu: cpuSeconds(emulator.pid as number), at: performance.now() };
      const { stdout } = await run(
        'taskset',
        [
          '-c',
          '1',
          process.execPath,
          '--import',
          'tsx',
          'test/bench/flux-load.ts',
          '--url',
          `ws://127.0.0.1:${port}/v2/listen?model=flux-general-en&encoding=linear16&sample_rate=16000`,
          '--key',
          'bench-key',
          '--streams',
          String(streams),
        ],
        { cwd: repoRoot, maxBuffer: 1024 * 1024 },
      );
      const cpu = (cpuSeconds(emulator.pid as number) - before.cpu) / ((performance.now() - before.at) / 1000);
      const result = JSON.parse(stdout.trim().split('\n').at(-1) as string);
      const onTime = result.open === streams && result.failed === 0 && result.lagP99Ms <= onTimeP99Ms;
      const generatorBound = result.generatorBusyTicks > 100;
      console.log(
        [
          String(streams).padStart(7),
          String(result.open).padStart(5),
          String(result.updatesPerSecond).padStart(11),
          result.lagP50Ms.toFixed(1).padStart(11),
          result.lagP99Ms.toFixed(1).padStart(11),
          result.lagMaxMs.toFixed(1).padStart(11),
          `${(cpu * 100).toFixed(0)} %`.padStart(13),
          `  ${onTime ? 'yes' : 'no'}${generatorBound ? ' (load generator saturated)' : ''}`,
        ].join(' '),
      );
      await waitFor('the streams of the step to end', () =>
        fetch(`${base}/stats`)
          .then((r) => r.json())
          .then((s) => (s as { streams: number }).streams === 0),
      );
      // A saturated generator measures itself, not the emulator: stop there too.
      if (!onTime || generatorBound) break;
      sustained = streams;
    }
    console.log(
      `One emulator process on one core sustains ${sustained} concurrent Flux-like streams on time (p99 TurnInfo lag <= ${onTimeP99Ms} ms).`,
    );
  } finally {
    await emulator.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
