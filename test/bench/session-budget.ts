/**
 * The new-session budget's own benchmark, on the fleet model (the shipped planner, gate
 * and lease sync): callers on four pods (14/2/2/2) who always want more than the budget,
 * the skew moved to another pod at 150 s; then autoscale with a 20 s interval under the
 * same demand. Prints starts per minute against the budget, the busiest 60 s window, and
 * the operator's model against the provider's limit as a curve over the run.
 */
import { sessionUse } from '../operator/session-use.js';

export async function sessionBudget(): Promise<void> {
  console.log('new-session budget: starts per minute against the budget (first minute is the ramp)');
  for (const budget of [40, 100, 400]) {
    const use = sessionUse(budget, 1, { minutes: 5 });
    const shares = use.perMinute.map((n) => `${Math.round((100 * n) / budget)}%`).join(' ');
    const worst = Math.min(...use.perMinute.slice(1)) / budget;
    console.log(
      `  budget ${budget}/min: ${shares}; worst minute after the first ${(100 * worst).toFixed(1)}%; ` +
        `busiest 60 s window ${use.busiestWindow}; over the limit ${use.violations.length}`,
    );
  }
  const autoscale = {
    scaleUpAtPercent: 70,
    stepPercent: 10,
    intervalSeconds: 20,
    scaleDownBelowPercent: 50,
    maxPerMinute: 120,
  };
  const use = sessionUse(40, 2, { minutes: 6, autoscale });
  console.log('autoscale (40/min, +10 % per 20 s at 70 % use, up to 120): modelled / provider / ceiling, every 20 s');
  const curve = use.trace.filter((t) => t.at % 20_000 === 250);
  console.log(`  ${curve.map((t) => `${Math.round(t.at / 1000)}s ${t.model}/${t.provider}/${t.ceiling}`).join('  ')}`);
  console.log(
    `  starts per minute ${use.perMinute.join(' ')}; model above the provider at ${use.modelAhead.length} ticks; ` +
      `over the provider's limit ${use.violations.length}`,
  );
  console.log(
    `  the model behind the provider after the first minute: at most ${(use.behindMs / 1000).toFixed(1)} s ` +
      `(${(use.behindMs / (autoscale.intervalSeconds * 1000)).toFixed(2)} intervals)`,
  );
}
