import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type BudgetFigures, budgetStatus, sameStatus } from './budget-status.js';

const figures = (overrides: Partial<BudgetFigures> = {}): BudgetFigures => ({
  generation: 3,
  pods: 2,
  allocated: 10,
  inUse: 4,
  queued: 0,
  peakInUse: 6,
  peakWindowSeconds: 300,
  admittedTotal: 20,
  rejectedTotal: 1,
  reapedTotal: 0,
  upstreamRejectedTotal: 0,
  pendingAcks: 0,
  staleLeases: [],
  overCommitted: undefined,
  upstreamRejections: 0,
  sharedWith: [],
  ...overrides,
});
const t0 = new Date('2026-01-01T00:00:00Z');
const t1 = new Date('2026-01-01T00:05:00Z');
const condition = (status: ReturnType<typeof budgetStatus>, type: string) =>
  status.conditions?.find((c) => c.type === type);

describe('budget status', () => {
  it('is Ready and not Degraded when every pod acknowledged and nothing is wrong', () => {
    const status = budgetStatus(figures(), undefined, t0);
    assert.equal(condition(status, 'Ready')?.status, 'True');
    assert.equal(condition(status, 'Degraded')?.reason, 'AsExpected');
    assert.equal(status.observedGeneration, 3);
    assert.equal(condition(status, 'Ready')?.observedGeneration, 3);
  });

  it('says NoPods and GrantsPending in Ready', () => {
    assert.equal(condition(budgetStatus(figures({ pods: 0 }), undefined, t0), 'Ready')?.reason, 'NoPods');
    assert.equal(condition(budgetStatus(figures({ pendingAcks: 1 }), undefined, t0), 'Ready')?.reason, 'GrantsPending');
  });

  it('names the first problem as Degraded reason and lists them all', () => {
    const status = budgetStatus(
      figures({ overCommitted: { reserved: 9, limit: 4 }, staleLeases: ['pod-a'], sharedWith: ['other/flux'] }),
      undefined,
      t0,
    );
    const degraded = condition(status, 'Degraded');
    assert.equal(degraded?.reason, 'OverCommitted');
    assert.match(degraded?.message ?? '', /9 streams are reserved against a limit of 4/);
    assert.match(degraded?.message ?? '', /pod-a/);
    assert.match(degraded?.message ?? '', /other\/flux/);
    assert.equal(
      condition(budgetStatus(figures({ upstreamRejections: 3 }), undefined, t0), 'Degraded')?.reason,
      'UpstreamRejecting',
    );
  });

  it('keeps lastTransitionTime while a condition keeps its status', () => {
    const first = budgetStatus(figures(), undefined, t0);
    const same = budgetStatus(figures({ inUse: 5 }), first, t1);
    assert.equal(condition(same, 'Ready')?.lastTransitionTime, '2026-01-01T00:00:00Z');
    const changed = budgetStatus(figures({ pods: 0 }), first, t1);
    assert.equal(condition(changed, 'Ready')?.lastTransitionTime, '2026-01-01T00:05:00Z');
  });

  it('compares statuses regardless of key order', () => {
    const status = budgetStatus(figures(), undefined, t0);
    const reordered = JSON.parse(JSON.stringify(Object.fromEntries(Object.entries(status).reverse())));
    assert.ok(sameStatus(reordered, status));
    assert.ok(!sameStatus({ ...status, inUse: 99 }, status));
  });
});
