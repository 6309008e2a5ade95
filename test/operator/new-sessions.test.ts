/**
 * New-session budgets on the real control plane, with sidecar processes as pods, two
 * operator replicas, and the emulator enforcing the provider's rule: every start counted
 * against its sliding 60 s window, refused past the limit. Callers always want more than
 * the budget; the figures of what the fleet made of it are printed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type LocalFleet, opened } from '../fleet/local-fleet.js';
import { closeAll } from '../fleet/streams.js';
import { testFleets } from '../fleet/test-fleets.js';
import { waitFor } from '../support/wait.js';
import { busiestWindow } from './session-use.js';

/** A fleet of its own for one test (tests here run one at a time). */
const fleet = testFleets('sessions');

/**
 * Callers on each pod who always want more than the budget: each opens a short stream,
 * closes it, and opens the next; refused, it tries again 100 ms later. `wanted` says how
 * many callers each pod has now.
 */
function callers(f: LocalFleet, wanted: Map<string, number>): { stop(): Promise<void> } {
  let running = true;
  const most = 6;
  const loops = [...f.pods.keys()].flatMap((pod) =>
    Array.from({ length: most }, async (_, i) => {
      while (running) {
        if (i >= (wanted.get(pod) ?? 0)) {
          await new Promise((resolve) => setTimeout(resolve, 200));
          continue;
        }
        const streams = opened(await f.open(pod, 1));
        if (streams.length === 0) await new Promise((resolve) => setTimeout(resolve, 100));
        await closeAll(streams);
      }
    }),
  );
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** Starts the referee accepted in the 60 s before `end` (its clock is this process's). */
function startsInMinuteBefore(f: LocalFleet, end: number): number {
  return f.refereeLedger().filter((e) => e.kind === 'accepted' && e.at > end - 60_000 && e.at <= end).length;
}

/** The most starts in any 60 s window of the referee's ledger. */
function busiestMinute(f: LocalFleet): number {
  return busiestWindow(
    f
      .refereeLedger()
      .filter((e) => e.kind === 'accepted')
      .map((e) => e.at),
  );
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Four pods, two operator replicas, every lease acknowledged, and callers on the pods as
 * `wanted` says (pod-a to pod-d).
 */
async function fourPodsWithCallers(
  options: Parameters<typeof fleet>[0],
  wanted: Map<string, number>,
): Promise<{ f: LocalFleet; demand: { stop(): Promise<void> } }> {
  const f = await fleet(options);
  for (const name of wanted.keys()) await f.addPod(name);
  await f.startOperator();
  await f.startOperator();
  await f.acknowledgedLeases(wanted.size);
  return { f, demand: callers(f, wanted) };
}

describe('a new-session budget', () => {
  it('is used by demand that is skewed and moves, and no 60 s window passes it (the provider closes with 1008)', async () => {
    const newSessions = { perMinute: 30 };
    const wanted = new Map([
      ['pod-a', 4],
      ['pod-b', 1],
      ['pod-c', 1],
      ['pod-d', 1],
    ]);
    const { f, demand } = await fourPodsWithCallers({ limit: 10, newSessions, refuseOverRateWith: 'close' }, wanted);
    let moved = 0;
    let end = 0;
    try {
      // The first minute fills the provider's window; then 40 s with the skew on pod-a.
      await sleep(100_000);
      moved = performance.now();
      wanted.set('pod-a', 1);
      wanted.set('pod-c', 4);
      await sleep(80_000);
      end = performance.now();
    } finally {
      await demand.stop();
    }
    const before = startsInMinuteBefore(f, moved);
    const after = startsInMinuteBefore(f, end);
    const busiest = busiestMinute(f);
    const referee = f.referee();
    console.log(
      `new-session budget ${newSessions.perMinute}/min, callers 4/1/1/1 then 1/1/4/1: ` +
        `${before} starts in the minute before the move, ${after} in the last minute, ` +
        `busiest 60 s window ${busiest}, refused by the provider ${referee.rejected['session-rate'] ?? 0}`,
    );
    assert.equal(referee.rejected['session-rate'] ?? 0, 0, 'no start closed by the provider for its rate');
    assert.ok(busiest <= newSessions.perMinute, `${busiest} starts in one 60 s window`);
    assert.ok(after > 0 && before > 0, 'the fleet made starts');
    assert.equal(referee.overLimitMoments, 0);
  });

  it('follows a provider that autoscales and never passes its limit (the provider refuses with 429)', async () => {
    const newSessions = {
      perMinute: 20,
      autoscale: {
        // Low thresholds: the provider scales with any steady use, and the model must follow safely.
        scaleUpAtPercent: 40,
        stepPercent: 20,
        intervalSeconds: 10,
        scaleDownBelowPercent: 20,
        maxPerMinute: 60,
      },
    };
    const wanted = new Map([
      ['pod-a', 3],
      ['pod-b', 1],
      ['pod-c', 1],
      ['pod-d', 1],
    ]);
    const { f, demand } = await fourPodsWithCallers(
      { limit: 10, newSessions, refuseOverRateWith: 'handshake' },
      wanted,
    );
    const curve: string[] = [];
    const started = performance.now();
    const sample = async () => {
      const status = (await f.budget()).status;
      const seconds = Math.round((performance.now() - started) / 1000);
      curve.push(
        `${seconds}s ${status?.newSessionsPerMinute ?? '-'}/${f.referee().sessionLimitPerMinute ?? '-'}` +
          `/${startsInMinuteBefore(f, performance.now())}`,
      );
    };
    try {
      // The first minute grants no session rate; then the provider steps up every 10 s at
      // this use, and the operator follows it.
      await waitFor(
        'the modelled limit to rise above the declared rate',
        async () => {
          await sample();
          return ((await f.budget()).status?.newSessionsPerMinute ?? 0) > newSessions.perMinute;
        },
        { timeoutMs: 150_000, intervalMs: 5000 },
      );
      for (let i = 0; i < 6; i++) {
        await sleep(5000);
        await sample();
      }
    } finally {
      await demand.stop();
    }
    const referee = f.referee();
    console.log(`autoscale: modelled / provider's limit / starts in the last 60 s, every 5 s: ${curve.join('  ')}`);
    console.log(
      `  refused by the provider ${referee.rejected['session-rate'] ?? 0}, busiest 60 s window ${busiestMinute(f)}`,
    );
    assert.equal(referee.rejected['session-rate'] ?? 0, 0, 'no start refused for the provider’s rate');
    assert.ok((referee.sessionLimitPerMinute ?? 0) > newSessions.perMinute, 'the provider scaled up');
    assert.ok(startsInMinuteBefore(f, performance.now()) > newSessions.perMinute, 'the fleet used the higher limit');
    assert.equal(referee.overLimitMoments, 0);
  });
});
