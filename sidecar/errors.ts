/**
 * Every error the sidecar answers a client with: a stable code, the HTTP status of a
 * refused handshake, and the message. Codes are never reused; each is documented in
 * the README (a test checks that).
 */

export interface ErrorSpec {
  status: number;
  /** Deepgram-style err_code in the JSON body, so SDKs read it as they read the provider's. */
  errCode: string;
  message: string;
}

export const sidecarErrors = {
  SLUICE_E_BAD_HANDSHAKE: {
    status: 400,
    errCode: 'Bad Request',
    message: 'The request is not a valid WebSocket handshake',
  },
  SLUICE_E_NOT_WEBSOCKET: {
    status: 426,
    errCode: 'UPGRADE_REQUIRED',
    message: 'This port proxies WebSocket streams only',
  },
  SLUICE_E_NO_BUDGET: { status: 403, errCode: 'NO_BUDGET', message: 'No StreamBudget covers this stream' },
  SLUICE_E_CONCURRENCY: { status: 429, errCode: 'TOO_MANY_REQUESTS', message: 'The concurrency budget is in use' },
  SLUICE_E_SESSION_RATE: {
    status: 429,
    errCode: 'TOO_MANY_REQUESTS',
    message: 'The new-session budget is used up for now',
  },
  SLUICE_E_NO_GRANT: { status: 429, errCode: 'TOO_MANY_REQUESTS', message: 'This pod holds no grant for the budget' },
  SLUICE_E_SHUTTING_DOWN: { status: 503, errCode: 'SERVICE_UNAVAILABLE', message: 'The sidecar is shutting down' },
  SLUICE_E_UPSTREAM_UNREACHABLE: { status: 502, errCode: 'BAD_GATEWAY', message: 'The upstream could not be reached' },
  SLUICE_E_UPSTREAM_TIMEOUT: {
    status: 504,
    errCode: 'GATEWAY_TIMEOUT',
    message: 'The upstream did not answer the handshake in time',
  },
  SLUICE_E_HANDSHAKE_TIMEOUT: {
    status: 408,
    errCode: 'REQUEST_TIMEOUT',
    message: 'The handshake was not completed in time',
  },
  SLUICE_E_CREDENTIALS: {
    status: 500,
    errCode: 'INTERNAL_SERVER_ERROR',
    message: 'The API key cannot be used',
  },
  SLUICE_E_INTERNAL: {
    status: 500,
    errCode: 'INTERNAL_SERVER_ERROR',
    message: 'The sidecar failed the handshake',
  },
} as const satisfies Record<string, ErrorSpec>;

export type SidecarErrorCode = keyof typeof sidecarErrors;
