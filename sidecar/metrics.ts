/**
 * The sidecar's Prometheus metrics, in a registry of its own. Names start with
 * sluice_sidecar_ and carry their unit; budgets are labelled namespace/name.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EnforcedBudget } from './budgets.js';

export class SidecarMetrics {
  readonly registry = new Registry();
  readonly admitted: Counter<'budget'>;
  readonly rejected: Counter<'budget' | 'reason'>;
  readonly queueWait: Histogram;
  readonly upstreamHandshake: Histogram;
  readonly streamDuration: Histogram;
  readonly reaped: Counter<'reason'>;
  readonly ended: Counter<'cause' | 'clean'>;
  readonly upstreamRejections: Counter<'status'>;
  /** Bytes relayed so far, ended and open streams alike; the proxy provides it once it exists. */
  relayedBytes: () => { clientToUpstream: number; upstreamToClient: number } = () => ({
    clientToUpstream: 0,
    upstreamToClient: 0,
  });
  readonly doubleReleases: Counter;
  readonly clientErrors: Counter<'code'>;
  readonly leaseWrites: Counter<'budget' | 'result'>;
  readonly fenced: Gauge<'budget'>;
  readonly grantEpoch: Gauge<'budget'>;

  constructor(budgets: () => readonly EnforcedBudget[], queued: () => number) {
    const registers = [this.registry];
    const perBudget = (name: string, help: string, read: (b: EnforcedBudget, now: number) => number | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ['budget'],
        registers,
        collect() {
          this.reset();
          const now = performance.now();
          for (const budget of budgets()) {
            const value = read(budget, now);
            if (value !== undefined) this.set({ budget: budget.key }, value);
          }
        },
      });
    perBudget('sluice_sidecar_streams_open', 'Streams open through this sidecar.', (b) => b.gate.open);
    perBudget(
      'sluice_sidecar_stale_slots',
      'Slots held after unclean ends, still counted against the grant.',
      (b, now) => b.gate.stale(now),
    );
    perBudget(
      'sluice_sidecar_grant_concurrency',
      'Concurrent streams this pod may have open.',
      (b) => b.gate.grant.concurrency,
    );
    perBudget(
      'sluice_sidecar_grant_sessions_per_minute',
      'Token-bucket rate for new streams, when the budget has a new-session limit.',
      (b) => b.gate.grant.newSessionsPerMinute,
    );
    perBudget('sluice_sidecar_queue_length', 'Streams waiting for room, by budget.', (b) => b.gate.waiting);
    new Gauge({
      name: 'sluice_sidecar_queued_streams',
      help: 'Streams waiting for room in all.',
      registers,
      collect() {
        this.set(queued());
      },
    });
    this.admitted = new Counter({
      name: 'sluice_sidecar_streams_admitted_total',
      help: 'Streams admitted.',
      labelNames: ['budget'],
      registers,
    });
    this.rejected = new Counter({
      name: 'sluice_sidecar_streams_rejected_total',
      help: 'Streams refused locally, by reason (concurrency, session-rate, no-grant).',
      labelNames: ['budget', 'reason'],
      registers,
    });
    this.queueWait = new Histogram({
      name: 'sluice_sidecar_queue_wait_seconds',
      help: 'Time streams spent waiting for room, admitted or not.',
      buckets: [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
      registers,
    });
    this.upstreamHandshake = new Histogram({
      name: 'sluice_sidecar_upstream_handshake_seconds',
      help: 'Time from dialling the upstream to its handshake answer.',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.streamDuration = new Histogram({
      name: 'sluice_sidecar_stream_duration_seconds',
      help: 'How long streams lasted.',
      buckets: [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 14400],
      registers,
    });
    this.reaped = new Counter({
      name: 'sluice_sidecar_streams_reaped_total',
      help: 'Streams the sidecar ended itself, by reason (idle, missed-pong, max-duration, shutdown, protocol-error).',
      labelNames: ['reason'],
      registers,
    });
    this.ended = new Counter({
      name: 'sluice_sidecar_streams_ended_total',
      help: 'Streams ended, by cause and whether the upstream closed cleanly.',
      labelNames: ['cause', 'clean'],
      registers,
    });
    this.upstreamRejections = new Counter({
      name: 'sluice_sidecar_upstream_rejections_total',
      help: 'Handshakes the upstream refused, by HTTP status (or "unreachable", "timeout").',
      labelNames: ['status'],
      registers,
    });
    const metrics = this;
    new Counter({
      name: 'sluice_sidecar_bytes_total',
      help: 'Bytes relayed, by direction (client_to_upstream, upstream_to_client).',
      labelNames: ['direction'],
      registers,
      // Read at each scrape, open streams included: a stream of hours must not hide its traffic until it ends.
      collect() {
        const relayed = metrics.relayedBytes();
        this.reset();
        this.inc({ direction: 'client_to_upstream' }, relayed.clientToUpstream);
        this.inc({ direction: 'upstream_to_client' }, relayed.upstreamToClient);
      },
    });
    this.doubleReleases = new Counter({
      name: 'sluice_sidecar_slot_double_releases_total',
      help: 'Slots released twice. A bug if ever above 0: a slot is released exactly once.',
      registers,
    });
    this.clientErrors = new Counter({
      name: 'sluice_sidecar_client_errors_total',
      help: 'Requests refused as malformed or unserviceable, by error code.',
      labelNames: ['code'],
      registers,
    });
    this.leaseWrites = new Counter({
      name: 'sluice_sidecar_lease_status_writes_total',
      help: 'StreamLease status writes (acknowledgements and heartbeats), by result (ok, error, not-found).',
      labelNames: ['budget', 'result'],
      registers,
    });
    this.fenced = new Gauge({
      name: 'sluice_sidecar_fenced',
      help: '1 while the budget is fenced: no status write succeeded within the fence time, so nothing new is admitted.',
      labelNames: ['budget'],
      registers,
    });
    this.grantEpoch = new Gauge({
      name: 'sluice_sidecar_grant_epoch',
      help: 'The epoch of the StreamLease grant in force (the last one put in force and acknowledged).',
      labelNames: ['budget'],
      registers,
    });
  }
}
