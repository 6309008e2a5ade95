/**
 * Budgets of other shapes than the default, on the real control plane with sidecar
 * processes as pods and the emulator as referee: leases whose duration is not a multiple
 * of three seconds, and a new-session budget whose limit autoscales, counted start by
 * start against the provider's sliding window.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { acknowledged } from '../../crds/api/index.js';
import { type LocalFleet, opened } from '../fleet/local-fleet.js';
import { closeAll, holdOpen } from '../fleet/streams.js';
import { testFleets } from '../fleet/test-fleets.js';
import { waitFor } from '../support/wait.js';

/** A fleet of its own for one test (tests here run one at a time). */
const fleet = testFleets('shapes');

/** Every lease acknowledged at an epoch past `epochs` (by lease name). */
async function acknowledgedPast(f: LocalFleet, epochs: Map<string, number>): Promise<void> {
  await waitFor('every lease to acknowledge a later grant', async () => {
    const leases = await f.leases();
    return leases.every((l) => acknowledged(l) && l.spec.epoch > (epochs.get(l.metadata.name as string) ?? 0))
      ? true
      : undefined;
  });
}

describe('lease durations that are not a multiple of three seconds', () => {
  it('are acknowledged and admit streams: 4 s, then 7 s', async () => {
    const f = await fleet({ limit: 6, leaseDurationSeconds: 4 });
    await f.addPod('pod-a');
    await f.addPod('pod-b');
    await f.startOperator();
    await f.acknowledgedLeases(2);
    const streams = await holdOpen(f, 'pod-a', 4);

    // A new duration reaches the sidecars with the budget: their writes and fences follow it.
    const before = new Map((await f.leases()).map((l) => [l.metadata.name as string, l.spec.epoch]));
    await f.patchBudgetSpec({ allocation: { leaseDurationSeconds: 7 } });
    await closeAll(streams);
    await holdOpen(f, 'pod-b', 4, streams);
    await acknowledgedPast(f, before);

    for (const pod of f.pods.values()) {
      const output = pod.sidecar?.script.output() ?? '';
      assert.doesNotMatch(output, /Failed to write lease status/, `${pod.name} wrote every status`);
      assert.doesNotMatch(output, /Fenced budget/, `${pod.name} was never fenced`);
    }
    assert.equal(f.referee().overLimitMoments, 0);
    await closeAll(streams);
  });
});

describe('a new-session budget that autoscales', () => {
  it('never lets the starts of any 60 s window pass the provider’s limit, while it scales up', async () => {
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
    const f = await fleet({ limit: 10, newSessions });
    for (const name of ['pod-a', 'pod-b', 'pod-c']) await f.addPod(name);
    await f.startOperator();
    await f.acknowledgedLeases(3);

    // Callers that always want more than the budget: short streams, one after another, on every pod.
    let running = true;
    const callers = [...f.pods.keys()].flatMap((pod) =>
      Array.from({ length: 2 }, async () => {
        while (running) {
          const attempts = await f.open(pod, 1);
          const streams = opened(attempts);
          if (streams.length === 0) await new Promise((resolve) => setTimeout(resolve, 100));
          await closeAll(streams);
        }
      }),
    );
    try {
      // A new leader grants no session rate for a minute (cuts of an earlier leader may still
      // be inside the window); then the provider steps up every 10 s at this use, and the
      // operator follows it.
      await waitFor(
        'the modelled limit to rise above the declared rate',
        async () => ((await f.budget()).status?.newSessionsPerMinute ?? 0) > newSessions.perMinute,
        { timeoutMs: 150_000, intervalMs: 500 },
      );
      await waitFor('starts past the declared rate in one minute', () => f.referee().accepted > newSessions.perMinute, {
        timeoutMs: 60_000,
      });
    } finally {
      running = false;
      await Promise.all(callers);
    }
    const referee = f.referee();
    assert.equal(referee.sessionRateExceeded, 0, 'no start over the provider’s limit in its 60 s window');
    assert.ok((referee.sessionLimitPerMinute ?? 0) > newSessions.perMinute, 'the provider scaled up');
    assert.equal(referee.overLimitMoments, 0);
  });
});
