/**
 * When the bridge gives up on WebSockets for a while and polls instead.
 *
 * Some networks let plain HTTPS through but not WebSockets: a filtering proxy answers the upgrade
 * itself, strips the Upgrade header on the way (the relay then sees a plain GET), or swallows the
 * handshake until it times out or resets it. Polling gets through those; it does not help when the
 * relay is down, refuses the token, or is itself in trouble, because every poll would meet the
 * same. So a WebSocket attempt that never opened suggests blocked WebSockets when:
 *
 * - the upgrade was answered by something other than the relay (a status without the relay's JSON
 *   error body: a proxy's block page, a captive portal, a 200 from a proxy that dropped the
 *   Upgrade header), except 502/503/504, which mean whoever answered could not reach the relay;
 * - or the relay itself answered with its JSON error as to a plain GET (404, 400, 426): the Upgrade
 *   header was stripped on the way. Its 401/403 (a token problem), 429 (rate limited), 5xx (the
 *   relay in trouble) and `protocol_version` (a bridge it does not speak) never count: polling
 *   would meet exactly the same;
 * - the handshake timed out after the connection was made (something in the way held it);
 * - the connection was reset or cut during the handshake.
 *
 * Never when the connection was refused or the name did not resolve (the relay or the network is
 * down), nor for TLS failures (polling uses the same TLS), nor after a WebSocket had opened: that
 * proves WebSockets pass, and its loss is an ordinary disconnect.
 */
import { PROTOCOL_VERSION_ERROR_CODE } from '@ctll/protocol';
import { HandshakeTimeoutError, UpgradeRejectedError } from './errors';
import type { Disconnect } from './transport';

/** Socket errors of a connection that was made and then cut during the handshake. */
const CUT_DURING_HANDSHAKE = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

export function suggestsBlockedWebSocket(disconnect: Disconnect): boolean {
  if (disconnect.wasOpen || disconnect.byUs) return false;
  const error = disconnect.error;
  if (error instanceof UpgradeRejectedError) return answeredByAnotherParty(error);
  if (error instanceof HandshakeTimeoutError) return error.connected;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code !== undefined && CUT_DURING_HANDSHAKE.has(code);
}

function answeredByAnotherParty(rejection: UpgradeRejectedError): boolean {
  const { status } = rejection;
  if (status === 502 || status === 503 || status === 504) return false;
  const fromRelay = rejection.relayCode !== undefined;
  if (!fromRelay) return true;
  // The relay does not speak this bridge's protocol: polling would be refused the same way.
  if (rejection.relayCode === PROTOCOL_VERSION_ERROR_CODE) return false;
  return status < 500 && status !== 401 && status !== 403 && status !== 429;
}
