/**
 * The seam between the bridge's connection loop and the ways of reaching the relay.
 *
 * A transport makes one connection attempt and, while it lasts, serves the relay's requests
 * against the local target. It reports what happened through ConnectionEvents; the loop in
 * bridge.ts decides about status, counters and retries, and about falling back from one transport
 * to the other (fallback.ts). The WebSocket transport (ws-transport.ts) and the HTTP long-poll
 * transport (poll-transport.ts) implement the same interfaces and share the stream table and the
 * local forwarder; only how frames travel differs.
 */
import type http from 'node:http';
import type { ControlMessage } from '@ctll/protocol';
import type { TokenSource } from './auth/token-source';
import type { LocalTargets } from './local-targets';

export const TRANSPORT_NAMES = ['ws', 'poll'] as const;
export type TransportName = (typeof TRANSPORT_NAMES)[number];

/** Why a connection ended, or why it never started. */
export interface Disconnect {
  /** For people: the same text for the same failure, so repeats can be recognised and not printed twice. */
  reason: string;
  /** True when the connection was up before it ended. */
  wasOpen: boolean;
  /** True when the bridge itself closed it (shutting down). */
  byUs: boolean;
  /** The WebSocket close code the relay sent, when it closed an open tunnel. */
  closeCode?: number;
  error?: Error;
}

export interface ConnectionEvents {
  /** The relay accepted the connection; requests may arrive from now on. */
  opened(): void;
  /** Called exactly once per connection, after every local request on it was aborted. */
  closed(disconnect: Disconnect): void;
  /** One request was answered to its end (whatever its HTTP status). */
  served(): void;
  /** Something worth a line in the log that changes nothing (e.g. the relay rejected one of our messages). */
  notice(message: string): void;
}

/** What every transport needs to know; built once by the bridge. */
export interface TransportSetup {
  /** The relay's WebSocket tunnel endpoint (ws: or wss:). */
  tunnelUrl: URL;
  /** The relay's base URL for plain HTTP requests (http: or https:, its base path kept, no trailing slash). */
  relayUrl: URL;
  /** The credential this connection opens with (from `tokens`, just before it was made). */
  token: string;
  /** Asked again for each long-poll request, and for the WebSocket's in-band renewals. */
  tokens: TokenSource;
  userAgent: string;
  /**
   * This bridge's random id, the same for every connection it makes: a registration that carries
   * it tells the relay that the bridge's earlier registrations are abandoned.
   */
  clientId: string;
  /** Extra headers on the connection request (tests use it to talk to a streaming-proxy directly). */
  upgradeHeaders: Readonly<Record<string, string>>;
  /** Offer whole frames on the connection (protocol/src/tunnel-whole.ts). */
  wholeFrames: boolean;
  /** Offer growing windows on the upgrade or in the registration (protocol/src/stream-window.ts). */
  growWindows: boolean;
  /** Carries the WebSocket through a corporate proxy; undefined goes direct. */
  relayAgent: http.Agent | undefined;
  /** Keep-alive pool (through the proxy, if any) for the long-poll transport's requests. */
  httpAgent: http.Agent;
  pingTimeoutMs: number;
  handshakeTimeoutMs: number;
  closeTimeoutMs: number;
  /** The local servers requests go to; the path picks one (local-targets.ts). */
  targets: LocalTargets;
}

export interface TunnelConnection {
  /** Local requests in flight on this connection. */
  readonly activeStreams: number;
  /** Sends a message that belongs to no stream (the target's health); dropped while not open. */
  sendControl(message: ControlMessage): void;
  /** Ends the connection and aborts every local request on it; resolves once it is gone. */
  close(code: number, reason: string): Promise<void>;
  /** Lets the requests in flight finish, then closes (the bridge switched to another connection). */
  drain(): void;
}

export type Transport = (setup: TransportSetup, events: ConnectionEvents) => TunnelConnection;
