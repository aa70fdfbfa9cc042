/**
 * The relay's error catalogue: one class per failure a caller can see, each with a stable `code`
 * and one HTTP status. All three programs throw these; each HTTP server turns them into
 * `{error: {code, message}}` in exactly one place.
 *
 * A failure of the relay itself (the container engine, the database, a proxy's address) is
 * explained in `message` for the operator's log, and answered with `publicMessage`: a caller on
 * the internet learns what happened to them, never our engine's words, hosts, users or addresses.
 */
import { ERROR_CATALOGUE, isErrorCode, type ErrorCode } from './error-catalogue';

export interface RelayErrorOptions {
  cause?: unknown;
  /** What the caller is told when `message` holds internals; unset: the message is fit to show. */
  publicMessage?: string;
}

export abstract class RelayError extends Error {
  abstract readonly status: number;
  abstract readonly code: string;
  readonly publicMessage?: string;

  constructor(message: string, options?: RelayErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.publicMessage = options?.publicMessage;
  }

  toJSON(): { error: { code: string; message: string } } {
    return { error: { code: this.code, message: this.publicMessage ?? this.message } };
  }

  /** Response headers that belong to this answer besides the JSON body (lower-case names). */
  headers(): Record<string, string> {
    return {};
  }
}

export class BadRequestError extends RelayError {
  readonly status: number = ERROR_CATALOGUE.bad_request;
  readonly code: string;
  constructor(message: string, code = 'bad_request') {
    super(message);
    this.code = code;
  }
}

/** A request path that climbs above the desktop's root (`..`, `%2e%2e`, `%2F..`). */
export class BadPathError extends RelayError {
  readonly status: number = ERROR_CATALOGUE.bad_path;
  readonly code = 'bad_path';
}

export class UnauthorizedError extends RelayError {
  readonly status: number = ERROR_CATALOGUE.unauthorized;
  readonly code = 'unauthorized';
}

export class ForbiddenError extends RelayError {
  readonly status: number = ERROR_CATALOGUE.forbidden;
  readonly code = 'forbidden';
}

/**
 * A relay key used outside its scope: a `call` key opening a tunnel, a `bridge` key calling one,
 * or any key managing keys (only the user's own sign-in may make or revoke them).
 */
export class KeyScopeError extends RelayError {
  readonly status: number = ERROR_CATALOGUE.key_scope;
  readonly code = 'key_scope';
}

/**
 * The operator's routes (`/api/admin/*`) for a caller whose token does not carry ADMIN_CLAIM, or
 * who came with a relay key (keys are never an operator's).
 */
export class NotOperatorError extends RelayError {
  readonly status: number = ERROR_CATALOGUE.not_operator;
  readonly code = 'not_operator';
}

export class NotFoundError extends RelayError {
  readonly status: number = ERROR_CATALOGUE.not_found;
  readonly code = 'not_found';
}

/**
 * A polling bridge the relay does not know (it restarted, or dropped the bridge): the bridge
 * registers again. The proxy and api-backend answer it alike so a bridge has one code to recognise.
 */
export class UnknownBridgeError extends RelayError {
  readonly status: number = ERROR_CATALOGUE.unknown_bridge;
  readonly code = 'unknown_bridge';
}

/**
 * A bridge speaking a tunnel protocol version the relay does not (protocol-version.ts): one of the
 * two must be upgraded, and the message says which. Permanent until then, so not a 5xx.
 */
export class ProtocolVersionError extends RelayError {
  readonly status: number = ERROR_CATALOGUE.protocol_version;
  readonly code = PROTOCOL_VERSION_ERROR_CODE;
}

/** ProtocolVersionError's code, for a bridge that must tell it from other refusals. */
export const PROTOCOL_VERSION_ERROR_CODE = 'protocol_version';

export class PayloadTooLargeError extends RelayError {
  readonly status: number = ERROR_CATALOGUE.payload_too_large;
  readonly code = 'payload_too_large';
}

/**
 * A limit was reached (a client address's failed logins, a user's request rate, concurrent
 * streams, desktop links, proxy starts). `retryAfterSeconds` becomes the Retry-After header.
 */
export class RateLimitedError extends RelayError {
  readonly status: number = ERROR_CATALOGUE.rate_limited;
  readonly code: string;
  readonly retryAfterSeconds?: number;

  constructor(message: string, options: { code?: string; retryAfterSeconds?: number } = {}) {
    super(message);
    this.code = options.code ?? 'rate_limited';
    this.retryAfterSeconds = options.retryAfterSeconds;
  }

  override headers(): Record<string, string> {
    return retryAfter(this.retryAfterSeconds);
  }
}

/** The desktop answered, but not with something we can pass on. */
export class BadGatewayError extends RelayError {
  readonly status: number = ERROR_CATALOGUE.bad_gateway;
  readonly code: string;
  constructor(message: string, code = 'bad_gateway', options?: RelayErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

export class DesktopOfflineError extends RelayError {
  readonly status: number = ERROR_CATALOGUE.desktop_offline;
  readonly code = 'desktop_offline';
}

export class ServiceUnavailableError extends RelayError {
  readonly status: number = ERROR_CATALOGUE.unavailable;
  readonly code: string;
  constructor(message: string, code = 'unavailable', options?: RelayErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/** The relay runs as many proxies as its operator allows (PROXY_MAX): a new user waits. */
export class CapacityError extends RelayError {
  readonly status: number = ERROR_CATALOGUE.capacity;
  readonly code = 'capacity';
  readonly retryAfterSeconds?: number;
  constructor(message: string, options: { retryAfterSeconds?: number } = {}) {
    super(message);
    this.retryAfterSeconds = options.retryAfterSeconds;
  }

  override headers(): Record<string, string> {
    return retryAfter(this.retryAfterSeconds);
  }
}

export class GatewayTimeoutError extends RelayError {
  readonly status: number = ERROR_CATALOGUE.desktop_timeout;
  readonly code = 'desktop_timeout';
}

/**
 * An error named by its catalogue code alone; its status is the catalogue's. A failure a desktop
 * names with a code of its own is the desktop failing the caller: 502.
 */
export class CatalogueError extends RelayError {
  readonly status: number;
  readonly code: string;
  constructor(code: ErrorCode | string, message: string, options?: RelayErrorOptions) {
    super(message, options);
    this.code = code;
    this.status = isErrorCode(code) ? ERROR_CATALOGUE[code] : ERROR_CATALOGUE.bad_gateway;
  }
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
  if (error instanceof RelayError) return { status: error.status, body: error.toJSON(), headers: error.headers() };
  return { status: ERROR_CATALOGUE.internal, body: { error: { code: 'internal', message: 'internal error' } }, headers: {} };
}

/** Retry-After in whole seconds, at least 1, when a wait is known. */
function retryAfter(seconds: number | undefined): Record<string, string> {
  return seconds === undefined ? {} : { 'retry-after': String(Math.max(1, Math.ceil(seconds))) };
}
