/**
 * A sidecar in front of an emulator, both in this process on loopback, for tests:
 * one budget (overridable), one emulator project, short timings.
 */
import { after } from 'node:test';
import { pino } from 'pino';
import { parseStreamBudgets } from '../../crds/api/index.js';
import type { SidecarConfig } from '../../sidecar/config.js';
import { readSidecarConfig } from '../../sidecar/config.js';
import { type Sidecar, startSidecar } from '../../sidecar/sidecar.js';
import { Emulator, type ProjectStats } from '../emulator/server.js';

export const fluxPath = '/v2/listen?model=flux-general-en&encoding=linear16&sample_rate=16000';
export const novaPath = '/v1/listen?model=nova-3&encoding=linear16&sample_rate=16000';
export const auth = { headers: { authorization: 'Token emulator-key' } };

export interface Setup {
  emulator: Emulator;
  sidecar: Sidecar;
  /** ws://127.0.0.1:<proxy port> */
  url: string;
  admin: string;
  upstream(): ProjectStats;
  /** The budget's gate figures. */
  gate(): { open: number; stale: number; inUse: number };
}

const running: { emulator: Emulator; sidecar: Sidecar }[] = [];
after(async () => {
  for (const { sidecar, emulator } of running.splice(0)) {
    await sidecar.shutdown();
    await emulator.close();
  }
});

export interface SetupOptions {
  /** Merged into the StreamBudget's spec. */
  spec?: Record<string, unknown>;
  /** Merged into the emulator's project. */
  project?: Record<string, unknown>;
  /** The rest of the emulator's configuration. */
  emulatorConfig?: Record<string, unknown>;
  env?: Record<string, string>;
}

export async function setup(options: SetupOptions = {}): Promise<Setup> {
  const emulator = await Emulator.start({
    projects: [
      { id: 'p', keys: ['emulator-key'], maxConcurrentStreams: 100, releaseDelaySeconds: 30, ...options.project },
    ],
    ...options.emulatorConfig,
  });
  const spec = {
    projectId: 'p',
    upstream: emulator.url,
    podSelector: { matchLabels: { app: 'test' } },
    maxConcurrentStreams: 3,
    admission: { queueTimeoutMs: 0 },
    reaping: { upstreamReleaseDelaySeconds: 30 },
    ...options.spec,
  };
  const manifest = JSON.stringify({
    apiVersion: 'sluice.dev/v1alpha1',
    kind: 'StreamBudget',
    metadata: { name: 'flux' },
    spec,
  });
  const config: SidecarConfig = readSidecarConfig({
    SLUICE_BUDGET_FILE: 'budgets.yaml',
    SLUICE_LISTEN: '127.0.0.1:0',
    SLUICE_ADMIN_LISTEN: '127.0.0.1:0',
    SLUICE_CLOSE_TIMEOUT_MS: '2000',
    SLUICE_SHUTDOWN_GRACE_SECONDS: '0',
    ...options.env,
  });
  const sidecar = await startSidecar(config, parseStreamBudgets(manifest), pino({ level: 'silent' }));
  running.push({ emulator, sidecar });
  const gate = sidecar.budgets[0]?.gate;
  return {
    emulator,
    sidecar,
    url: `ws://127.0.0.1:${sidecar.proxyPort}`,
    admin: `http://127.0.0.1:${sidecar.adminPort}`,
    upstream: () => emulator.stats().projects.p as ProjectStats,
    gate: () => {
      const now = performance.now();
      return { open: gate?.open ?? 0, stale: gate?.stale(now) ?? 0, inUse: gate?.inUse(now) ?? 0 };
    },
  };
}
