/**
 * The bridge as a library: what the CLI uses, and what end-to-end tests use to run a real bridge
 * in-process.
 */
export { Bridge, startBridge, type BridgeStats } from './bridge';
export { DEFAULT_OPTIONS, relayUrlFor, resolveOptions, tunnelUrlFor, type BridgeOptions, type ResolvedOptions } from './options';
export { formatStatus, StatusPrinter, TRANSPORT_LABELS, type BridgeState, type BridgeStatus, type StatusMode } from './status';
export { Backoff, DEFAULT_BACKOFF, type BackoffOptions } from '@ctll/protocol';
export type { ProxyEnv } from './proxy';
export { TRANSPORT_NAMES, type Disconnect, type TransportName } from './transport';
export { suggestsBlockedWebSocket } from './fallback';
export {
  AuthRefusedError,
  BridgeClosedError,
  BridgeError,
  ConnectTimeoutError,
  HandshakeTimeoutError,
  OptionError,
  PollRejectedError,
  RelayRejectedError,
  RegistrationLostError,
  UpgradeRejectedError,
} from './errors';
export { VERSION } from './version';
