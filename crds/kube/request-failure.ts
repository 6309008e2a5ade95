/**
 * Shared by the operator and the sidecar, as everything under crds/ is: what to log of a
 * failed request to the API server. An ApiException's message carries the response's
 * headers and body, so only the status code and the reason ever reach a log.
 */
import { ApiException } from '@kubernetes/client-node';

/** A failed request as logs and metrics show it; empty when there was no error. */
export interface RequestFailure {
  /** The HTTP status, or a network error's code (`ECONNREFUSED`, `ETIMEDOUT`). */
  code?: number | string;
  reason?: string;
}

/** The HTTP status and reason of a failed call, for logs and metrics: never the body or headers. */
export function describeFailure(error: unknown): RequestFailure {
  if (error === undefined || error === null) return {};
  if (error instanceof ApiException) {
    let body = error.body as { reason?: string; message?: string } | string | undefined;
    if (typeof body === 'string') {
      try {
        body = JSON.parse(body) as { reason?: string; message?: string };
      } catch {
        body = undefined;
      }
    }
    const reason = typeof body === 'object' && body ? (body.reason ?? body.message ?? 'Unknown') : 'Unknown';
    return { code: error.code, reason };
  }
  const failure = error as { statusCode?: number; code?: string; name?: string; message?: string; cause?: unknown };
  if (typeof failure.statusCode === 'number') return { code: failure.statusCode, reason: failure.message ?? '' };
  const cause = failure.cause as { code?: string } | undefined;
  const code = failure.code ?? cause?.code ?? failure.name ?? 'Error';
  // node-fetch says "request to <url> failed, reason: <why>": the why is what matters.
  const message = (failure.message ?? String(error)).split('\n')[0] as string;
  return { code, reason: message.split(', reason: ').at(-1) as string };
}
