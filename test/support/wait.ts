/**
 * Waiting for the cluster to reach a state: polls a condition until it holds or a
 * deadline passes, then fails naming what was awaited and what was seen last.
 */

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
}

/** Thrown by a check when waiting longer is pointless (the process it waits on has died). */
export class StopWaiting extends Error {
  override name = 'StopWaiting';
}

/**
 * Resolves with the first truthy value `check` returns; rejects after `timeoutMs`. A check
 * that throws is tried again (the API may be briefly away), unless it throws StopWaiting.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T> | T,
  options: WaitOptions = {},
): Promise<NonNullable<T>> {
  const { timeoutMs = 30_000, intervalMs = 100 } = options;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
      last = value;
    } catch (error) {
      if (error instanceof StopWaiting) throw error;
      last = error;
    }
    if (Date.now() >= deadline) {
      const seen = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what} (last seen: ${seen})`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** True when a process with this id exists. */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
