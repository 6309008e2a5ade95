import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { allocate, type Member, reservation, waterFill } from './allocate.js';

const member = (name: string, fields: Partial<Member> = {}): Member => ({
  name,
  phase: 'active',
  hasLease: true,
  spec: { concurrency: 0 },
  epoch: 1,
  ack: { epoch: 1, grant: { concurrency: 0 } },
  inUse: 0,
  demand: 0,
  stale: false,
  ...fields,
});

describe('waterFill', () => {
  it('gives every pod its demand and shares the rest as headroom', () => {
    assert.deepEqual(waterFill([10, 2, 0], 30, 1), [16, 8, 6]);
  });

  it('is max-min fair when demand exceeds the pool: small demands are met, big ones share the rest', () => {
    assert.deepEqual(waterFill([100, 5, 100], 45, 1), [20, 5, 20]);
  });

  it('lends an idle pod its minimum while others need it', () => {
    assert.deepEqual(waterFill([50, 0], 10, 3), [10, 0]);
  });

  it('never hands out more than the pool, and fills it', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(1000), { minLength: 1, maxLength: 50 }), fc.nat(5000), fc.nat(10), (d, pool, min) => {
        const result = waterFill(d, pool, min);
        const total = result.reduce((a, b) => a + b, 0);
        assert.equal(total, pool);
        // Nobody who wants more gets less than somebody else who got more than they wanted.
        const level = Math.max(...result.filter((r, i) => r < (d[i] as number)), -1);
        if (level >= 0)
          for (const r of result) assert.ok(r <= level + 1 || result.every((x, i) => x <= (d[i] as number)));
      }),
    );
  });
});

describe('reservation', () => {
  it('counts an unacknowledged grant at the larger of old and new', () => {
    const m = member('a', {
      spec: { concurrency: 3 },
      epoch: 2,
      ack: { epoch: 1, grant: { concurrency: 9 } },
      inUse: 4,
    });
    assert.equal(reservation(m), 9);
  });

  it('counts a draining pod at what it still uses once it acknowledged 0', () => {
    const m = member('a', {
      phase: 'draining',
      spec: { concurrency: 0 },
      ack: { epoch: 1, grant: { concurrency: 0 } },
      inUse: 2,
    });
    assert.equal(reservation(m), 2);
  });
});

describe('allocate', () => {
  const policy = { limit: 10, minPerPod: 1, strategy: 'Demand' as const };

  it('lowers before it raises: a raise waits until the lowering is acknowledged', () => {
    const a = member('a', { spec: { concurrency: 8 }, ack: { epoch: 1, grant: { concurrency: 8 } }, demand: 1 });
    const b = member('b', {
      spec: { concurrency: 2 },
      ack: { epoch: 1, grant: { concurrency: 2 } },
      inUse: 2,
      demand: 9,
    });
    const first = allocate(policy, [a, b], { mayRaise: true });
    assert.ok((first.writes.get('a')?.concurrency ?? 8) < 8);
    assert.equal(first.writes.has('b'), false, 'no capacity is free until a acknowledges');
  });

  it('writes nothing to a lease whose last grant is not acknowledged', () => {
    const a = member('a', {
      spec: { concurrency: 8 },
      epoch: 2,
      ack: { epoch: 1, grant: { concurrency: 5 } },
      demand: 0,
    });
    const result = allocate(policy, [a, member('b', { demand: 9 })], { mayRaise: true });
    assert.equal(result.writes.has('a'), false);
  });

  it('raises nothing while the leader may not, but still lowers', () => {
    const a = member('a', { spec: { concurrency: 8 }, ack: { epoch: 1, grant: { concurrency: 8 } }, demand: 0 });
    const b = member('b', { spec: { concurrency: 0 }, demand: 5 });
    const result = allocate({ ...policy, limit: 20 }, [a, b], { mayRaise: false });
    assert.equal(result.writes.has('b'), false);
  });

  it('says so when reservations exceed a lowered limit, and raises nothing', () => {
    const a = member('a', {
      spec: { concurrency: 8 },
      ack: { epoch: 1, grant: { concurrency: 8 } },
      inUse: 8,
      demand: 8,
    });
    const b = member('b', { spec: { concurrency: 0 }, demand: 4 });
    const result = allocate({ ...policy, limit: 5 }, [a, b], { mayRaise: true });
    assert.equal(result.overCommitted, true);
    assert.equal(result.writes.has('b'), false);
    assert.ok((result.writes.get('a')?.concurrency ?? 8) <= 5);
  });

  it('splits the whole new-session budget by session demand, one at least for each pod', () => {
    const members = [
      member('a', { sessionDemand: 70 }),
      member('b', { sessionDemand: 10 }),
      member('c', { sessionDemand: 0 }),
    ];
    const result = allocate({ ...policy, sessionsPerMinute: 100 }, members, { mayRaise: true });
    const shares = ['a', 'b', 'c'].map((n) => result.writes.get(n)?.newSessionsPerMinute ?? 0);
    assert.equal(
      shares.reduce((x, y) => x + y, 0),
      100,
    );
    assert.ok((shares[0] as number) >= 70 && (shares[1] as number) >= 10 && (shares[2] as number) >= 1, `${shares}`);
  });

  it('hands on new-session capacity a pod gave up only as its starts leave its window', () => {
    const sessions = { ...policy, sessionsPerMinute: 40 };
    const cut = (held: number) =>
      member('a', {
        spec: { concurrency: 1, newSessionsPerMinute: 10 },
        ack: { epoch: 1, grant: { concurrency: 1, newSessionsPerMinute: 10 } },
        sessionsHeld: held,
        sessionDemand: 0,
      });
    const busy = member('b', {
      spec: { concurrency: 1, newSessionsPerMinute: 10 },
      ack: { epoch: 1, grant: { concurrency: 1, newSessionsPerMinute: 10 } },
      sessionDemand: 100,
    });
    // a acknowledged a cut from 30 to 10 but 30 of its starts are still in its window: nothing is free.
    const full = allocate(sessions, [cut(30), busy], { mayRaise: true });
    assert.equal(full.writes.get('b')?.newSessionsPerMinute ?? 10, 10);
    assert.equal(full.sessionsWaiting, true);
    // 12 have left: b gets them.
    const drained = allocate(sessions, [cut(18), busy], { mayRaise: true });
    assert.equal(drained.writes.get('b')?.newSessionsPerMinute, 22);
  });
});
