import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { leaseTimings, type StreamBudget } from '../crds/api/index.js';
import { FakeClock } from '../test/support/fake-clock.js';
import { BudgetGate } from './admission.js';
import {
  continuedTotals,
  DemandWindow,
  Fence,
  gateTotals,
  type LeaseReport,
  pendingWrite,
  RecentCount,
  reportedTotals,
  statusPatch,
  WriteSchedule,
} from './lease-sync.js';

const timings = leaseTimings({
  spec: { allocation: { leaseDurationSeconds: 3, strategy: 'Demand', minPerPod: 1 } },
} as Pick<StreamBudget, 'spec'>);

describe('demand', () => {
  test('rises at once and falls only after the window', () => {
    const clock = new FakeClock();
    const window = new DemandWindow(10_000);
    window.record(clock.now(), 0, 0);
    clock.advance(1000);
    window.record(clock.now(), 5, 0);
    assert.equal(window.demand(clock.now()), 5, 'rises at once');
    clock.advance(1000);
    window.record(clock.now(), 1, 0);
    assert.equal(window.demand(clock.now()), 5, 'the peak holds within the window');
    clock.advance(9_500);
    assert.equal(window.demand(clock.now()), 5);
    clock.advance(500);
    assert.equal(window.demand(clock.now()), 1, 'falls once the peak has left the window');
  });

  test('counts the rejections of the window on top of the peak', () => {
    const clock = new FakeClock();
    const window = new DemandWindow(10_000);
    window.record(clock.now(), 2, 0);
    clock.advance(1000);
    window.record(clock.now(), 2, 3);
    assert.equal(window.demand(clock.now()), 5);
    clock.advance(5000);
    window.record(clock.now(), 2, 4);
    assert.equal(window.demand(clock.now()), 6);
    clock.advance(5000);
    assert.equal(window.demand(clock.now()), 3, 'the first three rejections left the window');
    clock.advance(5000);
    assert.equal(window.demand(clock.now()), 2);
  });

  test('queued streams count as demand', () => {
    const window = new DemandWindow(10_000);
    window.record(0, 3 + 4, 0);
    assert.equal(window.demand(0), 7);
  });
});

describe('sessions in the last minute', () => {
  test('counts starts within the window only', () => {
    const clock = new FakeClock();
    const count = new RecentCount(60_000);
    count.record(clock.now(), 0);
    clock.advance(10_000);
    count.record(clock.now(), 3);
    clock.advance(40_000);
    count.record(clock.now(), 5);
    assert.equal(count.count(clock.now()), 5);
    clock.advance(20_000);
    assert.equal(count.count(clock.now()), 2, 'the three starts at 10 s left the window at 70 s');
    clock.advance(40_000);
    assert.equal(count.count(clock.now()), 0);
  });
});

describe('the fence', () => {
  test('is up before the first successful write', () => {
    const fence = new Fence(timings.fenceAfterMs);
    assert.equal(fence.fenced(0), true);
    assert.equal(fence.fallsAt(), undefined);
  });

  test('falls fenceAfterMs after the last successful write was sent, and lifts with the next', () => {
    const clock = new FakeClock();
    const fence = new Fence(timings.fenceAfterMs);
    const sentAt = clock.now();
    clock.advance(300); // the write's round trip
    fence.succeeded(sentAt);
    assert.equal(fence.fenced(clock.now()), false);
    assert.equal(fence.fallsAt(), sentAt + timings.fenceAfterMs, 'counted from the send, not the answer');
    clock.advance(timings.fenceAfterMs - 301);
    assert.equal(fence.fenced(clock.now()), false);
    clock.advance(1);
    assert.equal(fence.fenced(clock.now()), true);
    fence.succeeded(clock.now());
    assert.equal(fence.fenced(clock.now()), false);
  });

  test('a late answer to an older write does not move the fence back', () => {
    const fence = new Fence(1000);
    fence.succeeded(500);
    fence.succeeded(100);
    assert.equal(fence.fallsAt(), 1500);
  });

  test('falls before the operator may call the lease stale', () => {
    for (const seconds of [2, 3, 30, 3600]) {
      const t = leaseTimings({
        spec: { allocation: { leaseDurationSeconds: seconds, strategy: 'Demand', minPerPod: 1 } },
      } as Pick<StreamBudget, 'spec'>);
      assert.ok(t.fenceAfterMs < t.leaseDurationMs && t.leaseDurationMs < t.staleAfterMs);
      assert.ok(t.heartbeatMs < t.fenceAfterMs, 'heartbeats come often enough to keep the fence down');
    }
  });
});

describe('the write schedule', () => {
  test('the first write goes at once', () => {
    const schedule = new WriteSchedule(timings);
    assert.ok(schedule.dueAt('none') <= 0);
  });

  test('an acknowledgement goes at once, however recent the last write', () => {
    const clock = new FakeClock();
    const schedule = new WriteSchedule(timings);
    schedule.sent(clock.now());
    schedule.succeeded();
    clock.advance(1);
    assert.ok(schedule.dueAt('ack') <= clock.now());
  });

  test('a change waits for the minimum gap; nothing new waits for the heartbeat', () => {
    const clock = new FakeClock();
    const schedule = new WriteSchedule(timings);
    schedule.sent(clock.now());
    schedule.succeeded();
    assert.equal(schedule.dueAt('change'), timings.minHeartbeatGapMs);
    assert.equal(schedule.dueAt('none'), timings.heartbeatMs);
    assert.ok(timings.minHeartbeatGapMs <= 1000 && timings.minHeartbeatGapMs < timings.heartbeatMs);
  });

  test('failed writes are retried with a backoff that doubles up to the heartbeat', () => {
    const clock = new FakeClock();
    const schedule = new WriteSchedule({ heartbeatMs: 1000, minHeartbeatGapMs: 500, writeTimeoutMs: 1000 }, 100);
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      schedule.sent(clock.now());
      schedule.failed(clock.now());
      const due = schedule.dueAt('change');
      delays.push(due - clock.now());
      clock.advance(due - clock.now());
    }
    assert.deepEqual(delays, [100, 200, 400, 800, 1000, 1000]);
    schedule.sent(clock.now());
    schedule.failed(clock.now());
    assert.equal(schedule.dueAt('none'), clock.now() + 1000, 'heartbeats too are retried after the backoff');
    assert.ok(schedule.dueAt('ack') <= clock.now(), 'a new acknowledgement is never held back');
    schedule.sent(clock.now());
    schedule.succeeded();
    assert.equal(schedule.dueAt('change'), clock.now() + 500, 'after a success, the usual gaps again');
  });
});

describe('status writes', () => {
  const report: LeaseReport = {
    observedEpoch: 4,
    grant: { concurrency: 2 },
    inUse: 1,
    staleSlots: 0,
    queued: 0,
    demand: 1,
    sessionsLastMinute: 1,
    sessionDemand: 6,
    sessionWindow: [0, 1],
    sessionWindowInherited: [0, 1],
    admittedTotal: 1,
    rejectedTotal: 0,
    reapedTotal: 0,
    upstreamRejectedTotal: 0,
  };

  test('a new epoch or grant is an acknowledgement; other news is a change', () => {
    assert.equal(pendingWrite(undefined, report), 'ack');
    assert.equal(pendingWrite(report, { ...report, observedEpoch: 5 }), 'ack');
    assert.equal(pendingWrite(report, { ...report, grant: { concurrency: 0 } }), 'ack');
    assert.equal(pendingWrite(report, { ...report, inUse: 2 }), 'change');
    assert.equal(pendingWrite(report, { ...report, queued: 1 }), 'change');
    assert.equal(pendingWrite(report, { ...report, demand: 3 }), 'change');
    assert.equal(pendingWrite(report, { ...report, sessionDemand: 12 }), 'change');
    assert.equal(pendingWrite(report, { ...report }), 'none');
    // The window moves with time alone: it rides along with writes that go out anyway.
    assert.equal(pendingWrite(report, { ...report, sessionWindow: [1] }), 'none');
  });

  test('any counter that moved is a change, so it goes out after the minimum gap, not the heartbeat', () => {
    for (const key of ['admittedTotal', 'rejectedTotal', 'reapedTotal', 'upstreamRejectedTotal'] as const) {
      assert.equal(pendingWrite(report, { ...report, [key]: report[key] + 1 }), 'change', key);
    }
  });

  test('the patch carries every field, clears a rate no longer granted, and stamps milliseconds', () => {
    const { status } = statusPatch(report, new Date(Date.UTC(2025, 0, 2, 3, 4, 5, 678)));
    assert.deepEqual(status, {
      observedEpoch: 4,
      grant: { concurrency: 2, newSessionsPerMinute: null },
      inUse: 1,
      staleSlots: 0,
      queued: 0,
      demand: 1,
      sessionsLastMinute: 1,
      sessionDemand: 6,
      sessionWindow: [0, 1],
      sessionWindowInherited: [0, 1],
      admittedTotal: 1,
      rejectedTotal: 0,
      reapedTotal: 0,
      upstreamRejectedTotal: 0,
      heartbeatTime: '2025-01-02T03:04:05.678Z',
    });
    const withRate = statusPatch({ ...report, grant: { concurrency: 2, newSessionsPerMinute: 30 } }, new Date());
    assert.deepEqual(withRate.status.grant, { concurrency: 2, newSessionsPerMinute: 30 });
  });

  test("a gate's counters: admissions, rejections of every reason, reaped streams, upstream refusals", () => {
    const gate = new BudgetGate(
      { name: 'voice/flux', queueTimeoutMs: 0, maxQueueLength: 0, releaseDelayMs: 0 },
      { concurrency: 1 },
      0,
    );
    gate.admitted = 5;
    gate.rejected.concurrency = 1;
    gate.rejected['session-rate'] = 2;
    gate.rejected['no-grant'] = 3;
    gate.reaped = 4;
    gate.upstreamRejected = 7;
    assert.deepEqual(gateTotals(gate), {
      admittedTotal: 5,
      rejectedTotal: 6,
      reapedTotal: 4,
      upstreamRejectedTotal: 7,
    });
  });

  test('counters continue from what the lease reported before a restart', () => {
    const reported = reportedTotals({ admittedTotal: 10, rejectedTotal: 2, reapedTotal: 3, upstreamRejectedTotal: 4 });
    const fresh = { admittedTotal: 0, rejectedTotal: 0, reapedTotal: 0, upstreamRejectedTotal: 0 };
    assert.deepEqual(continuedTotals({ reported, gate: fresh }, fresh), reported, 'nothing new: what it reported');
    const now = { admittedTotal: 2, rejectedTotal: 1, reapedTotal: 1, upstreamRejectedTotal: 1 };
    assert.deepEqual(continuedTotals({ reported, gate: fresh }, now), {
      admittedTotal: 12,
      rejectedTotal: 3,
      reapedTotal: 4,
      upstreamRejectedTotal: 5,
    });
  });

  test('a lease recreated while the gate lives on counts only what the gate counted since', () => {
    const atTake = { admittedTotal: 7, rejectedTotal: 1, reapedTotal: 2, upstreamRejectedTotal: 3 };
    const now = { admittedTotal: 8, rejectedTotal: 1, reapedTotal: 3, upstreamRejectedTotal: 5 };
    assert.deepEqual(continuedTotals({ reported: reportedTotals(undefined), gate: atTake }, now), {
      admittedTotal: 1,
      rejectedTotal: 0,
      reapedTotal: 1,
      upstreamRejectedTotal: 2,
    });
  });

  test('a status an older sidecar wrote, without the newer counters, continues them from 0', () => {
    assert.deepEqual(reportedTotals({ admittedTotal: 3, rejectedTotal: 1 }), {
      admittedTotal: 3,
      rejectedTotal: 1,
      reapedTotal: 0,
      upstreamRejectedTotal: 0,
    });
  });
});
