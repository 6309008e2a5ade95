/**
 * One local fleet at a time for a test file on the shared control plane: each test gets a
 * fleet in a namespace of its own, whose operators mind only that namespace; the previous
 * test's fleet is stopped first, and the last one when the file ends.
 */
import { after } from 'node:test';
import { testCluster, testNamespace } from '../cluster/test-cluster.js';
import { type FleetOptions, LocalFleet } from './local-fleet.js';

export type TestFleetOptions = Omit<FleetOptions, 'admin' | 'namespace'>;

/** A maker of fleets in namespaces named after `prefix`. */
export function testFleets(prefix: string): (options: TestFleetOptions) => Promise<LocalFleet> {
  const fleets: LocalFleet[] = [];
  after(async () => {
    for (const fleet of fleets.splice(0)) await fleet.stop();
  });
  return async (options) => {
    for (const previous of fleets.splice(0)) await previous.stop();
    const cluster = await testCluster();
    const namespace = await testNamespace(prefix);
    const created = await LocalFleet.create({
      admin: cluster.kubeConfig(),
      namespace,
      ...options,
      // Tests share the control plane: each fleet's operators mind their own namespace.
      operatorEnv: { SLUICE_WATCH_NAMESPACE: namespace, ...options.operatorEnv },
    });
    fleets.push(created);
    return created;
  };
}
