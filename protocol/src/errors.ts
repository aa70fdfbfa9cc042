/**
 * The relay's error catalogue: one class per failure a caller can see, each with a stable `code`
 * and one HTTP status. All three programs throw these; each HTTP server turns them into
 * `{error: {code, message}}` in exactly one place.
 */
export abstract class RelayError extends Error {
  abstract readonly status: number;
  abstract readonly code: string;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }

  toJSON(): { error: { code: string; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

export class BadRequestError extends RelayError {
  readonly status = 400;
  readonly code: string;
  constructor(message: string, code = 'bad_request') {
    super(message);
    this.code = code;
  }
}

export class UnauthorizedError extends RelayError {
  readonly status = 401;
  readonly code = 'unauthorized';
}

export class ForbiddenError extends RelayError {
  readonly status = 403;
  readonly code = 'forbidden';
}

export class NotFoundError extends RelayError {
  readonly status = 404;
  readonly code = 'not_found';
}

/**
 * A polling bridge the relay does not know (it restarted, or dropped the bridge): the bridge
 * registers again. The proxy and api-backend answer it alike so a bridge has one code to recognise.
 */
export class UnknownBridgeError extends RelayError {
  readonly status = 404;
  readonly code = 'unknown_bridge';
}

export class PayloadTooLargeError extends RelayError {
  readonly status = 413;
  readonly code = 'payload_too_large';
}

/**
 * A per-user limit was reached (request rate, concurrent streams, desktop links, proxy starts).
 * `retryAfterSeconds` becomes the answer's Retry-After header.
 */
export class RateLimitedError extends RelayError {
  readonly status = 429;
  readonly code: string;
  readonly retryAfterSeconds?: number;
  constructor(message: string, options: { code?: string; retryAfterSeconds?: number } = {}) {
    super(message);
    this.code = options.code ?? 'rate_limited';
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

/** The desktop answered, but not with something we can pass on. */
export class BadGatewayError extends RelayError {
  readonly status = 502;
  readonly code: string;
  constructor(message: string, code = 'bad_gateway', options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export class DesktopOfflineError extends RelayError {
  readonly status = 503;
  readonly code = 'desktop_offline';
}

export class ServiceUnavailableError extends RelayError {
  readonly status = 503;
  readonly code: string;
  constructor(message: string, code = 'unavailable', options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** The relay runs as many proxies as its operator allows (PROXY_MAX): a new user waits. */
export class CapacityError extends RelayError {
  readonly status = 503;
  readonly code = 'capacity';
  readonly retryAfterSeconds?: number;
  constructor(message: string, options: { retryAfterSeconds?: number } = {}) {
    super(message);
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export class GatewayTimeoutError extends RelayError {
  readonly status = 504;
  readonly code = 'desktop_timeout';
}

/**
 * The status, JSON body and extra headers for any error, ours or not; unknown errors never leak
 * their message. An error that knows when to try again says so in Retry-After.
 */
export function errorBody(error: unknown): {
  status: number;
  body: { error: { code: string; message: string } };
  headers: Record<string, string>;
} {
  if (!(error instanceof RelayError)) return { status: 500, body: { error: { code: 'internal', message: 'internal error' } }, headers: {} };
  const retryAfter = (error as { retryAfterSeconds?: number }).retryAfterSeconds;
  const headers: Record<string, string> = retryAfter === undefined ? {} : { 'retry-after': String(Math.max(1, Math.ceil(retryAfter))) };
  return { status: error.status, body: error.toJSON(), headers };
}
