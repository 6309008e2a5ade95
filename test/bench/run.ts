/**
 * `npm run bench [-- NAME…]`: runs the benchmarks and prints their figures. Figures
 * are measured here, never asserted in tests.
 */
import { allocationSpeed } from './allocation.js';
import { emulatorCapacity } from './emulator-capacity.js';
import { operatorFleet } from './operator-fleet.js';
import { relayLatency } from './relay-latency.js';
import { sessionBudget } from './session-budget.js';

const benchmarks: Record<string, () => Promise<void>> = {
  allocation: allocationSpeed,
  emulator: emulatorCapacity,
  operator: operatorFleet,
  relay: relayLatency,
  sessions: sessionBudget,
};

const names = process.argv.slice(2);
for (const name of names) {
  if (!benchmarks[name]) {
    console.error(`Unknown benchmark ${name}; known: ${Object.keys(benchmarks).join(', ')}`);
    process.exit(2);
  }
}
for (const name of names.length > 0 ? names : Object.keys(benchmarks)) {
  await (benchmarks[name] as () => Promise<void>)();
}
process.exit(0);
