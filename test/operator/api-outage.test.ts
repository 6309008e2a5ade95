/**
 * The API server away for longer than a lease: sidecars fence themselves (nothing new is
 * admitted, open streams go on), and when it returns the fleet resumes without ever having
 * gone over the limit. Runs on a control plane of its own, since it stops the API server.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ControlPlane } from '../cluster/control-plane.js';
import { crdManifests } from '../cluster/crds.js';
import { LocalFleet, opened } from '../fleet/local-fleet.js';
import { holdOpen } from '../fleet/streams.js';
import { sendAudio } from '../support/stream-client.js';
import { waitFor } from '../support/wait.js';

let plane: ControlPlane | undefined;
let fleet: LocalFleet | undefined;
after(async () => {
  await fleet?.stop();
  await plane?.stop();
});

describe('an API server outage', () => {
  it('fences the sidecars, keeps open streams, and goes on when the API returns', async () => {
    plane = await ControlPlane.start({ crds: crdManifests });
    const admin = plane.kubeConfig();
    const { CoreV1Api } = await import('@kubernetes/client-node');
    await admin.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: 'outage' } } });
    fleet = await LocalFleet.create({ admin, namespace: 'outage', limit: 6 });
    await fleet.addPod('pod-a');
    await fleet.addPod('pod-b');
    const operator = await fleet.startOperator();
    const f = fleet;
    await f.acknowledgedLeases(2);
    // A new leader raises nothing for a lease duration: wait for the grants.
    const streams = await holdOpen(f, 'pod-a', 3);

    await plane.stopApiServer();
    try {
      // Past the fence (2.5 s of a 3 s lease), nothing new is admitted anywhere.
      await waitFor(
        'both sidecars to fence',
        async () => {
          const attempts = [...(await f.open('pod-a', 1)), ...(await f.open('pod-b', 1))];
          for (const s of opened(attempts)) s.ws.close();
          return attempts.every((a) => 'status' in a && a.reason === 'no-grant') ? true : undefined;
        },
        { timeoutMs: 20_000, intervalMs: 500 },
      );
      // Open streams go on: audio up, answers back.
      for (const stream of streams) {
        const before = stream.messages.length;
        sendAudio(stream.ws, 0.5);
        await stream.received(before + 1);
      }
      // The outage lasts until every party has given up on its own clock: the sidecars have
      // fenced (above) and the leader, unable to renew, has stepped down, so the fleet must
      // come back through a new election and the grace a new leader keeps before raising.
      await waitFor('the leader to step down', () => operator.script.output().includes('"msg":"Stopped leading"'));
    } finally {
      await plane.startApiServer();
    }

    await waitFor(
      'pod-b to admit again',
      async () => {
        const attempt = await f.open('pod-b', 1);
        return opened(attempt).length === 1 ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    assert.ok(
      streams.every((s) => s.ws.readyState === s.ws.OPEN),
      'no stream was ended by the outage',
    );
    const referee = f.referee();
    assert.equal(referee.overLimitMoments, 0);
    assert.ok(referee.peak <= 6);
  });
});
