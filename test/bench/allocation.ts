/**
 * How long a full reallocation takes: 1,000 pods across 10 budgets, every lease
 * acknowledged and demand shifted, so that each budget computes targets, reservations
 * and grants for all of its pods. Runs the real LeaseBook and allocate().
 */
import { allocate } from '../../operator/allocate.js';
import { type Candidate, LeaseBook } from '../../operator/lease-book.js';
import { percentile } from './stats.js';

export async function allocationSpeed(): Promise<void> {
  const budgets = 10;
  const podsPerBudget = 100;
  const limit = 1500;
  const books = Array.from(
    { length: budgets },
    () =>
      new LeaseBook({
        staleAfterMs: 30_000,
        releaseDelayMs: 10_000,
        staleGoneHoldMs: 60_000,
        sessionWindowMs: 0,
        demandHalfLifeMs: 30_000,
      }),
  );
  const candidates = (round: number, b: number): Candidate[] =>
    Array.from({ length: podsPerBudget }, (_, i) => {
      const grant = { concurrency: 15 };
      const demand = (i + round * 7 + b) % podsPerBudget < 10 ? 60 : 5;
      return {
        name: `budget-${b}.pod-${i}.abcd1234`,
        phase: 'active' as const,
        lease: {
          name: `budget-${b}.pod-${i}.abcd1234`,
          spec: grant,
          epoch: 3,
          status: { observedEpoch: 3, grant, inUse: Math.min(demand, 15), demand, heartbeatTime: String(round) },
          statusFingerprint: `${round}:${i}:${demand}`,
        },
      };
    });
  const timings: number[] = [];
  let writes = 0;
  for (let round = 0; round < 200; round++) {
    const inputs = books.map((_, b) => candidates(round, b));
    const start = process.hrtime.bigint();
    for (let b = 0; b < budgets; b++) {
      const members = (books[b] as LeaseBook).members(inputs[b] as Candidate[], round * 1000);
      writes += allocate({ limit, minPerPod: 1, strategy: 'Demand' }, members, { mayRaise: true }).writes.size;
    }
    timings.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  const steady = timings.slice(20).sort((a, b) => a - b);
  console.log('Allocation: a full reallocation of 1,000 pods across 10 budgets (LeaseBook + allocate)');
  console.log(
    `  p50 ${percentile(steady, 50).toFixed(2)} ms   p99 ${percentile(steady, 99).toFixed(2)} ms   max ${steady.at(-1)?.toFixed(2)} ms   (${(writes / timings.length).toFixed(0)} grant writes decided per round)`,
  );
}
