/**
 * Budgets of other shapes than the default, on the real control plane with sidecar
 * processes as pods and the emulator as referee: leases whose duration is not a multiple
 * of three seconds.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { acknowledged } from '../../crds/api/index.js';
import type { LocalFleet } from '../fleet/local-fleet.js';
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
