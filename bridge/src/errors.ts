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

/** A transport that this build does not provide yet. */
export class TransportUnavailableError extends BridgeError {
  readonly code = 'transport_unavailable';
  constructor(readonly transport: string) {
    super(`${transport} transport: not yet available`);
  }
}

/**
 * The relay answered the WebSocket upgrade with an HTTP status instead of switching protocols.
 * `relayCode` and `relayMessage` come from its JSON body `{error: {code, message}}` when it sent one.
 */
export class UpgradeRejectedError extends BridgeError {
  readonly code = 'upgrade_rejected';
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

function describeRejection(status: number, statusText: string, code?: string, message?: string): string {
  const detail = [code, message].filter((part) => part !== undefined && part !== '').join(': ') || statusText;
  const what = status === 401 || status === 403 ? 'the relay refused the token' : 'the relay refused the tunnel';
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

/** The bridge was closed while someone still waited for it. */
export class BridgeClosedError extends BridgeError {
  readonly code = 'bridge_closed';
  constructor() {
    super('the bridge was closed');
  }
}
