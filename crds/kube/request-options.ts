/**
 * Per-request options for @kubernetes/client-node calls: a deadline (a hung connection
 * must not hold a write or a renewal forever), an optional signal that cuts the request
 * short, and an optional content type (the patch strategy). Shared by the sidecar's
 * lease writes and the operator's leader election.
 */
import { Observable, type RequestContext, type ResponseContext } from '@kubernetes/client-node';

export interface RequestLimits {
  /** Give up after this long. Any positive number: it is rounded up to whole milliseconds. */
  timeoutMs: number;
  /** Also give up when this aborts (a stop that must not wait for the API). */
  signal?: AbortSignal;
  /** The Content-Type header, e.g. a patch strategy. */
  contentType?: string;
}

/** The whole milliseconds a deadline of `ms` waits: `AbortSignal.timeout` takes integers only. */
export function deadlineMs(ms: number): number {
  if (!Number.isFinite(ms) || ms <= 0) throw new RangeError(`A request deadline must be a positive number, not ${ms}`);
  return Math.ceil(ms);
}

/** The signal one request runs under: its deadline, and the caller's signal if any. */
export function requestSignal(limits: Pick<RequestLimits, 'timeoutMs' | 'signal'>): AbortSignal {
  const deadline = AbortSignal.timeout(deadlineMs(limits.timeoutMs));
  return limits.signal ? AbortSignal.any([limits.signal, deadline]) : deadline;
}

/** Options for one API call: the deadline starts when the request is sent, not when the options are built. */
export function requestOptions(limits: RequestLimits) {
  deadlineMs(limits.timeoutMs); // A bad deadline fails here, where it is set, not inside the client.
  const middleware = [
    {
      pre: (context: RequestContext) => {
        context.setSignal(requestSignal(limits));
        if (limits.contentType) context.setHeaderParam('Content-Type', limits.contentType);
        return new Observable(Promise.resolve(context));
      },
      post: (response: ResponseContext) => new Observable(Promise.resolve(response)),
    },
  ];
  return { middleware, middlewareMergeStrategy: 'append' as const };
}
