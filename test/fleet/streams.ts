/**
 * Driving a local fleet's pods: hold a number of streams open on a pod (retrying refusals
 * while grants move), and hang up.
 */
import type { OpenedStream } from '../support/stream-client.js';
import { waitFor } from '../support/wait.js';
import { type LocalFleet, opened } from './local-fleet.js';

/** Opens streams on `pod` until `count` of `streams` are open, retrying refusals while grants move. */
export async function holdOpen(
  fleet: LocalFleet,
  pod: string,
  count: number,
  streams: OpenedStream[] = [],
): Promise<OpenedStream[]> {
  await waitFor(
    `${pod} to hold ${count} streams`,
    async () => {
      const live = streams.filter((s) => s.ws.readyState === s.ws.OPEN);
      if (live.length >= count) return true;
      streams.push(...opened(await fleet.open(pod, count - live.length)));
      return undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  );
  return streams;
}

/** Closes every stream cleanly and waits for the closes. */
export function closeAll(streams: OpenedStream[]): Promise<unknown> {
  return Promise.all(
    streams.splice(0).map((s) => {
      s.ws.close(1000);
      return s.closed;
    }),
  );
}
