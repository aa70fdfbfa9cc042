/**
 * The bridge as a library: what the CLI uses, and what end-to-end tests use to run a real bridge
 * in-process.
 */
export { Bridge, startBridge, type BridgeStats } from './bridge';
export { DEFAULT_OPTIONS, resolveOptions, tunnelUrlFor, type BridgeOptions, type ResolvedOptions } from './options';
export { formatStatus, StatusPrinter, type BridgeState, type BridgeStatus, type StatusMode } from './status';
export { Backoff, DEFAULT_BACKOFF, type BackoffOptions } from './backoff';
export type { ProxyEnv } from './proxy';
export { TRANSPORT_NAMES, type TransportName } from './transport';
export {
  BridgeClosedError,
  BridgeError,
  ConnectTimeoutError,
  OptionError,
  TransportUnavailableError,
  UpgradeRejectedError,
} from './errors';
export { VERSION } from './version';
