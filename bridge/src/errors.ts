/**
 * The bridge's own failures, one class each with a stable `code`. Stream failures that travel to
 * the relay use the protocol's TunnelErrorCode instead; these are what the person running the
 * bridge (or a program embedding it) gets to see.
 */

export abstract class BridgeError extends Error {
  abstract readonly code: string;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A bad option or flag; the CLI exits with status 2. `option` names it, e.g. `--target`. */
export class OptionError extends BridgeError {
  readonly code = 'bad_option';
  constructor(
    readonly option: string,
    message: string,
  ) {
    super(`${option}: ${message}`);
  }
}

/**
 * The relay (or something in its place) answered with an HTTP status the bridge did not ask for.
 * `relayCode` and `relayMessage` come from its JSON body `{error: {code, message}}` when it sent one.
 */
export abstract class RelayRejectedError extends BridgeError {
  constructor(
    readonly status: number,
    readonly statusText: string,
    readonly relayCode?: string,
    readonly relayMessage?: string,
  ) {
    super(describeRejection(status, statusText, relayCode, relayMessage));
  }

  /** 401 and 403: the token is missing, expired or not good for this relay. Retrying may still help (a refreshed token). */
  get isAuthFailure(): boolean {
    return this.status === 401 || this.status === 403;
  }
}

/** The relay answered the WebSocket upgrade with an HTTP status instead of switching protocols. */
export class UpgradeRejectedError extends RelayRejectedError {
  readonly code = 'upgrade_rejected';
}

/** The same for the polling transport's register, poll and heartbeat. */
export class PollRejectedError extends RelayRejectedError {
  readonly code = 'poll_rejected';
}

/**
 * A poll or heartbeat answered 404: the relay no longer knows this bridge (it restarted, or dropped
 * us after its grace period). The bridge's side of the relay's `unknown_bridge` answer (protocol's
 * UnknownBridgeError), under its own name so the two are never mistaken for one another.
 */
export class RegistrationLostError extends BridgeError {
  readonly code = 'unknown_bridge';
  constructor() {
    super('the relay no longer knows this bridge (restarted, or no poll reached it in time); registering again');
  }
}

/**
 * The relay did not answer the WebSocket upgrade (or the polling registration) in time.
 * `connected` says whether a TCP (and TLS) connection to the relay, or to the proxy in front of
 * it, was made first: a handshake swallowed after connecting points at something in the way.
 */
export class HandshakeTimeoutError extends BridgeError {
  readonly code = 'handshake_timeout';
  constructor(
    readonly timeoutMs: number,
    readonly connected: boolean,
  ) {
    super(`the relay did not answer within ${Math.round(timeoutMs / 100) / 10} s`);
  }
}

function describeRejection(status: number, statusText: string, code?: string, message?: string): string {
  const detail = [code, message].filter((part) => part !== undefined && part !== '').join(': ') || statusText;
  // Only the relay's own JSON error says it was the token; a bare 403 may be a proxy's block page.
  const what = (status === 401 || status === 403) && code !== undefined ? 'the relay refused the token' : 'the relay refused the tunnel';
  return `${what}: ${status} ${detail}`.trim();
}

/** The local server answered with a head the tunnel protocol cannot carry (too many or too long headers). */
export class UnsendableHeadError extends BridgeError {
  readonly code = 'unsendable_head';
}

/** `waitConnected` gave up; `lastReason` says why the last attempt failed, if one did. */
export class ConnectTimeoutError extends BridgeError {
  readonly code = 'connect_timeout';
  constructor(timeoutMs: number, lastReason?: string) {
    super(`not connected within ${timeoutMs} ms${lastReason ? ` (last attempt: ${lastReason})` : ''}`);
  }
}

/**
 * The relay refused the credential `attempts` times in a row, and the bridge stopped trying
 * (`authFailExit`): retrying a refused token only fills the relay's log. The CLI exits with
 * EXIT_AUTH_REFUSED so a service manager can tell it apart from a crash.
 */
export class AuthRefusedError extends BridgeError {
  readonly code = 'auth_refused';
  constructor(
    readonly attempts: number,
    readonly lastReason: string,
  ) {
    super(`${lastReason} (${attempts} times in a row)`);
  }
}

/** The bridge was closed while someone still waited for it. */
export class BridgeClosedError extends BridgeError {
  readonly code = 'bridge_closed';
  constructor() {
    super('the bridge was closed');
  }
}

/** The relay's `{error: {code, message}}` in a refusal's body, when the body is one (trimmed for a log line). */
export function parseRelayError(text: string): { code?: string; message?: string } | undefined {
  try {
    const parsed: unknown = JSON.parse(text);
    const error = (parsed as { error?: unknown } | null)?.error;
    if (typeof error !== 'object' || error === null) return undefined;
    const { code, message } = error as Record<string, unknown>;
    return {
      code: typeof code === 'string' ? code.slice(0, 64) : undefined,
      message: typeof message === 'string' ? message.slice(0, 300) : undefined,
    };
  } catch {
    return undefined;
  }
}

/** The relay offers no device login (dev auth, or no device client configured); the message says what to do instead. */
export class SignInUnavailableError extends BridgeError {
  readonly code = 'sign_in_unavailable';
}

/** The identity provider refused the stored refresh token (revoked, expired, or signed out elsewhere): only `ctll-bridge login` helps. */
export class SignedOutError extends BridgeError {
  readonly code = 'signed_out';
  constructor(
    readonly server: string,
    options?: { cause?: unknown },
  ) {
    super(`your sign-in is no longer valid (the identity provider refused it); run: ctll-bridge login --server ${server}`, options);
  }
}
