/**
 * Property tests of the whole allocation loop, on the fleet model: whatever happens —
 * pods joining, draining, vanishing, sidecars and operators restarting, a leader paused,
 * the API away, acks late or lost, the limit lowered — the streams open upstream never
 * exceed the limit, session starts stay within the per-minute budget, nothing leaks, and
 * under skewed steady demand the fleet uses nearly all of the budget before anyone waits.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Fleet, type FleetEvent, type FleetSettings } from './fleet-model.js';

const event: fc.Arbitrary<FleetEvent> = fc.oneof(
  { weight: 3, arbitrary: fc.constant<FleetEvent>({ kind: 'addPod' }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('setDemand' as const), pod: fc.nat(9), streams: fc.nat(60) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('drainPod' as const), pod: fc.nat(9) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('deletePod' as const), pod: fc.nat(9) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('killPod' as const), pod: fc.nat(9) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('deselectPod' as const), pod: fc.nat(9) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('restartSidecar' as const), pod: fc.nat(9) }) },
  { weight: 1, arbitrary: fc.constant<FleetEvent>({ kind: 'restartOperator' }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('pauseLeader' as const), ticks: fc.integer({ min: 1, max: 60 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('apiDown' as const), ticks: fc.integer({ min: 1, max: 60 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('lowerLimit' as const), to: fc.integer({ min: 1, max: 40 }) }),
  },
);

const settings: fc.Arbitrary<FleetSettings> = fc.record({
  limit: fc.integer({ min: 1, max: 60 }),
  minPerPod: fc.integer({ min: 0, max: 3 }),
  leaseDurationMs: fc.constantFrom(3000, 5000, 15000),
  releaseDelayMs: fc.constantFrom(1000, 4000, 10000),
  tickMs: fc.constantFrom(250, 500),
  strategy: fc.constantFrom('Demand' as const, 'Equal' as const),
});

/** Runs the scenario, then lets demand fall to nothing and waits out every hold. */
function run(fleet: Fleet, schedule: { at: number; event: FleetEvent }[], ticks: number): void {
  const byTick = new Map<number, FleetEvent[]>();
  for (const { at, event } of schedule) byTick.set(at % ticks, [...(byTick.get(at % ticks) ?? []), event]);
  for (let t = 0; t < ticks; t++) {
    for (const e of byTick.get(t) ?? []) fleet.apply(e);
    fleet.tick();
  }
}

function settle(fleet: Fleet, ms: number): void {
  const end = fleet.now + ms;
  while (fleet.now < end) fleet.tick();
}

describe('the allocation loop', () => {
  it('never lets the streams open upstream pass the limit, whatever happens', () => {
    fc.assert(
      fc.property(
        settings,
        fc.integer(),
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.record({ at: fc.nat(399), event }), { maxLength: 40 }),
        (s, seed, pods, schedule) => {
          const fleet = new Fleet({ ...s, minPerPod: Math.min(s.minPerPod, s.limit) }, seed);
          for (let i = 0; i < pods; i++) fleet.addPod(Math.floor(s.limit / 2));
          run(fleet, schedule, 400);
          assert.deepEqual(fleet.upstream.violations, []);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('keeps session starts within the per-minute budget', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 5, max: 120 }),
        fc.integer(),
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.record({ at: fc.nat(599), event }), { maxLength: 30 }),
        (perMinute, seed, pods, schedule) => {
          const fleet = new Fleet(
            {
              limit: 40,
              minPerPod: 1,
              sessionsPerMinute: perMinute,
              leaseDurationMs: 3000,
              releaseDelayMs: 2000,
              tickMs: 500,
            },
            seed,
          );
          for (let i = 0; i < pods; i++) fleet.addPod(10);
          run(
            fleet,
            schedule.filter((e) => e.event.kind !== 'lowerLimit'),
            600,
          );
          assert.deepEqual(fleet.upstream.violations, []);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('leaks nothing: once the dust settles, the whole budget is granted again', () => {
    fc.assert(
      fc.property(
        settings,
        fc.integer(),
        fc.array(fc.record({ at: fc.nat(199), event }), { maxLength: 25 }),
        (s, seed, schedule) => {
          const fleet = new Fleet({ ...s, minPerPod: 0 }, seed);
          for (let i = 0; i < 3; i++) fleet.addPod(Math.floor(s.limit / 2));
          run(fleet, schedule, 200);
          // Quiet: no demand, no more crashes or lost writes.
          fleet.chaos = false;
          for (const pod of fleet.demand.keys()) fleet.demand.set(pod, 0);
          fleet.endAllStreams();
          settle(fleet, 6 * s.leaseDurationMs + 2 * s.releaseDelayMs + 60_000);
          assert.equal(fleet.upstream.count(fleet.now), 0, 'streams still counted upstream');
          for (const sidecar of fleet.sidecars.values()) assert.equal(sidecar.gate.inUse(fleet.now), 0);
          // Leases of pods that went are released; only live pods keep one.
          for (const lease of fleet.leases.values()) assert.ok(fleet.pods.has(lease.pod), `lease of ${lease.pod} kept`);
          // With demand back on a running, selected pod, it can have the whole (current) limit.
          const running = [...fleet.pods.values()].filter((p) => p.phase === 'running' && p.selected);
          if (running.length === 0) return;
          for (const pod of fleet.demand.keys()) fleet.demand.set(pod, 0);
          fleet.demand.set(running[0]?.name as string, fleet.limit * 2);
          settle(fleet, 20 * s.leaseDurationMs);
          const sidecar = fleet.sidecars.get(running[0]?.name as string);
          assert.ok(sidecar);
          const minimum = s.strategy === 'Equal' ? Math.floor(fleet.limit / running.length) : fleet.limit;
          const granted = sidecar.gate.grant.concurrency;
          assert.ok(granted >= minimum, `pod granted ${granted}; expected ≥ ${minimum} of ${fleet.limit}`);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('under skewed steady demand, uses at least 95 % of the budget before any pod rejects', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 20, max: 300 }),
        fc.array(fc.integer({ min: 0, max: 100 }), { minLength: 2, maxLength: 8 }),
        fc.integer(),
        (limit, weights, seed) => {
          const total = weights.reduce((a, b) => a + b, 0) || 1;
          const fleet = new Fleet(
            {
              limit,
              minPerPod: 1,
              leaseDurationMs: 3000,
              releaseDelayMs: 2000,
              tickMs: 250,
              churn: false,
              chaos: false,
            },
            seed,
            1,
          );
          // Skewed demand that adds up to more than the limit.
          for (const w of weights) fleet.addPod(Math.ceil((w / total) * limit * 1.2));
          settle(fleet, 60_000);
          for (let i = 0; i < 200; i++) {
            const before = fleet.rejections;
            fleet.tick();
            if (fleet.rejections > before) {
              const open = fleet.openStreams();
              assert.ok(open >= 0.95 * limit, `a pod rejected with only ${open} of ${limit} streams open`);
            }
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});
