/**
 * The error catalogue: every code an error answer of the relay carries, with its one HTTP status.
 * errors.ts's classes take their status from here and CatalogueError looks it up, so one code
 * never means two statuses, and no sender writes a status next to a code.
 */
export const ERROR_CATALOGUE = {
  // The request, or a desktop's answer handed to the proxy, is malformed.
  bad_request: 400,
  bad_path: 400,
  protocol_version: 400,
  flow_control: 400,
  malformed_answer: 400,
  bad_cursor: 400,
  too_many_shares: 400,
  share_url_invalid: 400,
  share_url_insecure: 400,
  share_url_not_allowed: 400,
  share_url_credentials: 400,
  share_url_unresolvable: 400,
  share_url_private_address: 400,
  unauthorized: 401,
  forbidden: 403,
  key_scope: 403,
  not_operator: 403,
  not_found: 404,
  unknown_bridge: 404,
  unknown_request: 404,
  // A `/t/<name>/` prefix naming no target of the desktop's bridge (`--target name=url`): the bridge
  // says so with this code (TunnelErrorCode.UnknownTarget) and the proxy answers it as a CatalogueError.
  unknown_target: 404,
  method_not_allowed: 405,
  payload_too_large: 413,
  rate_limited: 429,
  too_many_streams: 429,
  too_many_links: 429,
  // Live status streams (GET /api/me/events) open at once for one user.
  too_many_event_streams: 429,
  internal: 500,
  // The desktop (or its zrok share) failed the caller's request.
  bad_gateway: 502,
  bad_response: 502,
  bad_message: 502,
  target_unreachable: 502,
  target_failed: 502,
  unknown_stream: 502,
  cancelled_by_desktop: 502,
  share_failed: 502,
  share_unreachable: 502,
  share_address_refused: 502,
  unavailable: 503,
  desktop_offline: 503,
  // A `/t/<name>/` request while only the desktop's zrok share serves: a share carries the default
  // target alone, and the named ones come back with the tunnel.
  target_needs_tunnel: 503,
  desktop_disconnected: 503,
  queue_full: 503,
  capacity: 503,
  draining: 503,
  auth_unavailable: 503,
  proxy_unreachable: 503,
  proxy_start_failed: 503,
  desktop_timeout: 504,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export function isErrorCode(code: string): code is ErrorCode {
  return Object.prototype.hasOwnProperty.call(ERROR_CATALOGUE, code);
}

/**
 * The message of each answer that two places send alike, as a template: `{name}` is filled from
 * the values given. One wording per code, so the proxy's answer and api-backend's never drift
 * apart and a bridge or client that shows them shows one sentence.
 */
export const ERROR_MESSAGES = {
  desktop_offline: 'your desktop bridge is not connected',
  unknown_bridge: 'no such bridge: register again',
  queue_full: 'your desktop is not collecting requests fast enough: its queue is full',
  too_many_streams: 'at most {max} requests at once per tunnel',
} as const satisfies Partial<Record<ErrorCode, string>>;

/** The catalogue's message for `code`, with its `{name}` placeholders filled from `values`. */
export function errorMessage(code: keyof typeof ERROR_MESSAGES, values: Record<string, string | number> = {}): string {
  return ERROR_MESSAGES[code].replace(/\{(\w+)\}/g, (placeholder, name: string) => (name in values ? String(values[name]) : placeholder));
}
