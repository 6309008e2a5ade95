/**
 * The emulator's Prometheus metrics, in a registry of its own so several emulators
 * can share a process. Current values are read from the books when scraped; events
 * are counted as they happen.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { EmulatorStats, ProjectStats } from './server.js';

export class EmulatorMetrics {
  readonly registry = new Registry();
  readonly #handshakes: Counter<'project' | 'outcome' | 'reason'>;
  readonly #ends: Counter<'project' | 'clean'>;

  constructor(stats: () => EmulatorStats) {
    const registry = this.registry;
    const gauge = (name: string, help: string, read: (p: ProjectStats) => number | null) =>
      new Gauge({
        name,
        help,
        labelNames: ['project'],
        registers: [registry],
        collect() {
          this.reset();
          for (const project of Object.values(stats().projects)) {
            const value = read(project);
            if (value !== null) this.set({ project: project.id }, value);
          }
        },
      });
    gauge(
      'sluice_emulator_streams_in_use',
      'Streams counted against the limit: open plus stale slots.',
      (p) => p.inUse,
    );
    gauge('sluice_emulator_streams_open', 'Streams open now.', (p) => p.open);
    gauge(
      'sluice_emulator_stale_slots',
      'Slots still counted after streams ended without a close handshake.',
      (p) => p.stale,
    );
    gauge('sluice_emulator_streams_peak', 'Highest in-use count since the last reset, exact.', (p) => p.peak);
    gauge('sluice_emulator_stream_limit', 'The concurrency limit of the project.', (p) => p.limit);
    gauge(
      'sluice_emulator_over_limit_moments',
      'Accepted streams that took the count above the limit since the last reset.',
      (p) => p.overLimitMoments,
    );
    gauge(
      'sluice_emulator_over_limit_seconds',
      'Time spent above the limit since the last reset.',
      (p) => p.overLimitMs / 1000,
    );
    gauge(
      'sluice_emulator_session_starts_last_minute',
      'Streams started in the last 60 s.',
      (p) => p.sessionStartsLastMinute,
    );
    gauge(
      'sluice_emulator_session_limit_per_minute',
      'The new-session limit in force (after autoscaling).',
      (p) => p.sessionLimitPerMinute,
    );
    this.#handshakes = new Counter({
      name: 'sluice_emulator_handshakes_total',
      help: 'Handshakes by outcome (accepted, rejected) and rejection reason.',
      labelNames: ['project', 'outcome', 'reason'],
      registers: [registry],
    });
    this.#ends = new Counter({
      name: 'sluice_emulator_stream_ends_total',
      help: 'Streams ended, by whether a close handshake completed.',
      labelNames: ['project', 'clean'],
      registers: [registry],
    });
  }

  handshake(project: string, outcome: 'accepted' | 'rejected', reason: string): void {
    this.#handshakes.inc({ project, outcome, reason });
  }

  streamEnded(project: string, clean: boolean): void {
    this.#ends.inc({ project, clean: String(clean) });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
