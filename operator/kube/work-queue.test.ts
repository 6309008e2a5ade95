import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FakeClock } from '../../test/support/fake-clock.js';
import { type ReconcileResult, runWorkers, WorkQueue } from './work-queue.js';

/** Lets promise callbacks that are already due run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

describe('WorkQueue', () => {
  test('hands out keys in order and each only once however often it was added', async () => {
    const queue = new WorkQueue({ clock: new FakeClock() });
    queue.add('ns/a');
    queue.add('ns/b');
    queue.add('ns/a');
    assert.equal(queue.length, 2);
    assert.equal(await queue.get(), 'ns/a');
    assert.equal(await queue.get(), 'ns/b');
    assert.equal(queue.length, 0);
  });

  test('never hands a key to two workers at once, and queues it again when it was added meanwhile', async () => {
    const queue = new WorkQueue({ clock: new FakeClock() });
    queue.add('ns/a');
    assert.equal(await queue.get(), 'ns/a');
    queue.add('ns/a');
    queue.add('ns/a');
    assert.equal(queue.length, 0, 'a key being processed is not handed out again');
    let second: string | undefined;
    void queue.get().then((key) => {
      second = key;
    });
    await settle();
    assert.equal(second, undefined);
    queue.done('ns/a');
    await settle();
    assert.equal(second, 'ns/a');
    queue.done('ns/a');
    assert.equal(queue.length, 0, 'a key done without a new add is not queued again');
  });

  test('wakes a waiting worker when a key arrives', async () => {
    const queue = new WorkQueue({ clock: new FakeClock() });
    const waiting = queue.get();
    queue.add('ns/a');
    assert.equal(await waiting, 'ns/a');
  });

  test('queues a delayed key when its time comes, and the earlier of two delays wins', async () => {
    const clock = new FakeClock();
    const queue = new WorkQueue({ clock });
    queue.addAfter('ns/a', 1000);
    queue.addAfter('ns/a', 5000);
    queue.addAfter('ns/b', 500);
    queue.addAfter('ns/b', 200);
    clock.advance(199);
    assert.equal(queue.length, 0);
    clock.advance(1);
    assert.equal(queue.length, 1);
    assert.equal(await queue.get(), 'ns/b');
    clock.advance(800);
    assert.equal(await queue.get(), 'ns/a');
    clock.advance(10_000);
    assert.equal(queue.length, 0, 'the later delay of a key was dropped');
  });

  test('backs off a failing key exponentially up to the maximum, and forget resets it', async () => {
    const clock = new FakeClock();
    const queue = new WorkQueue({ clock, baseDelayMs: 50, maxDelayMs: 300 });
    for (const expected of [50, 100, 200, 300, 300]) {
      queue.addRateLimited('ns/a');
      clock.advance(expected - 1);
      assert.equal(queue.length, 0, `not before ${expected} ms`);
      clock.advance(1);
      assert.equal(queue.length, 1, `after ${expected} ms`);
      queue.done((await queue.get()) as string);
    }
    assert.equal(queue.requeues('ns/a'), 5);
    queue.forget('ns/a');
    assert.equal(queue.requeues('ns/a'), 0);
    assert.equal(queue.backoffMs(queue.requeues('ns/a')), 50);
  });

  test('keeps the backoff of each key apart', () => {
    const queue = new WorkQueue({ clock: new FakeClock(), baseDelayMs: 10 });
    queue.addRateLimited('ns/a');
    queue.addRateLimited('ns/a');
    queue.addRateLimited('ns/b');
    assert.equal(queue.requeues('ns/a'), 2);
    assert.equal(queue.requeues('ns/b'), 1);
  });

  test('after shutDown answers undefined to waiting and new gets, and drops queued and delayed keys', async () => {
    const clock = new FakeClock();
    const queue = new WorkQueue({ clock });
    const waiting = queue.get();
    queue.shutDown();
    assert.equal(await waiting, undefined);
    queue.add('ns/a');
    queue.addAfter('ns/b', 10);
    clock.advance(100);
    assert.equal(queue.length, 0);
    assert.equal(await queue.get(), undefined);
    assert.equal(queue.shuttingDown, true);
  });

  test('lets a worker finish its key after shutDown', async () => {
    const queue = new WorkQueue({ clock: new FakeClock() });
    queue.add('ns/a');
    const key = await queue.get();
    queue.shutDown();
    queue.add('ns/a');
    queue.done(key as string);
    assert.equal(queue.length, 0);
  });
});

describe('runWorkers', () => {
  test('forgets the backoff of a key that succeeded', async () => {
    const queue = new WorkQueue({ clock: new FakeClock() });
    const seen: string[] = [];
    let fail = true;
    const running = runWorkers(
      queue,
      1,
      async (key) => {
        seen.push(key);
        if (fail) {
          fail = false;
          throw new Error('conflict');
        }
        queue.shutDown();
        return {};
      },
      {},
    );
    queue.add('ns/a');
    await settle();
    assert.equal(queue.requeues('ns/a'), 1);
    queue.add('ns/a');
    await running;
    assert.deepEqual(seen, ['ns/a', 'ns/a']);
    assert.equal(queue.requeues('ns/a'), 0);
  });

  test('retries a key whose reconcile threw after its backoff, and reports the error', async () => {
    const clock = new FakeClock();
    const queue = new WorkQueue({ clock, baseDelayMs: 100 });
    const errors: [string, string, number][] = [];
    let calls = 0;
    const running = runWorkers(
      queue,
      1,
      async () => {
        calls += 1;
        if (calls < 3) throw new Error(`attempt ${calls} failed`);
        return {};
      },
      { onError: (key, error, requeues) => errors.push([key, (error as Error).message, requeues]) },
    );
    queue.add('ns/a');
    await settle();
    assert.equal(calls, 1);
    clock.advance(99);
    await settle();
    assert.equal(calls, 1);
    clock.advance(1);
    await settle();
    assert.equal(calls, 2);
    clock.advance(200);
    await settle();
    assert.equal(calls, 3);
    assert.deepEqual(errors, [
      ['ns/a', 'attempt 1 failed', 1],
      ['ns/a', 'attempt 2 failed', 2],
    ]);
    assert.equal(queue.requeues('ns/a'), 0);
    queue.shutDown();
    await running;
  });

  test('queues a key again after the delay its reconcile asked for', async () => {
    const clock = new FakeClock();
    const queue = new WorkQueue({ clock });
    let calls = 0;
    const running = runWorkers(queue, 1, async (): Promise<ReconcileResult> => {
      calls += 1;
      return calls === 1 ? { requeueAfterMs: 5000 } : {};
    });
    queue.add('ns/a');
    await settle();
    clock.advance(4999);
    await settle();
    assert.equal(calls, 1);
    clock.advance(1);
    await settle();
    assert.equal(calls, 2);
    clock.advance(60_000);
    await settle();
    assert.equal(calls, 2);
    queue.shutDown();
    await running;
  });

  test('works on different keys in parallel but never on one key twice at once', async () => {
    const queue = new WorkQueue({ clock: new FakeClock() });
    const active = new Set<string>();
    let mostAtOnce = 0;
    const releases: (() => void)[] = [];
    const processed: string[] = [];
    const twiceAtOnce: string[] = [];
    const running = runWorkers(queue, 3, async (key) => {
      if (active.has(key)) twiceAtOnce.push(key);
      active.add(key);
      mostAtOnce = Math.max(mostAtOnce, active.size);
      await new Promise<void>((resolve) => releases.push(resolve));
      active.delete(key);
      processed.push(key);
      return {};
    });
    queue.add('ns/a');
    queue.add('ns/b');
    await settle();
    queue.add('ns/a');
    queue.add('ns/c');
    await settle();
    assert.equal(active.size, 3);
    assert.deepEqual([...active].sort(), ['ns/a', 'ns/b', 'ns/c']);
    while (processed.length < 4) {
      releases.shift()?.();
      await settle();
    }
    assert.deepEqual(processed.sort(), ['ns/a', 'ns/a', 'ns/b', 'ns/c']);
    assert.equal(mostAtOnce, 3);
    assert.deepEqual(twiceAtOnce, []);
    queue.shutDown();
    await running;
  });

  test('resolves once the queue shuts down and the workers have finished', async () => {
    const queue = new WorkQueue({ clock: new FakeClock() });
    let release: () => void = () => undefined;
    let finished = false;
    const running = runWorkers(queue, 2, async () => {
      await new Promise<void>((resolve) => {
        release = resolve;
      });
      finished = true;
      return {};
    }).then(() => finished);
    queue.add('ns/a');
    await settle();
    queue.shutDown();
    release();
    assert.equal(await running, true);
  });
});
