/**
 * The streaming-proxy's own small HTTP API, as api-backend reads it: `GET /status` and
 * `GET /events`. Declared once here so the proxy that answers and api-backend that asks cannot
 * drift apart. (The proxy answers only api-backend, which proves itself with PROXY_SECRET_HEADER.)
 */
import type { TargetHealth } from './target';

export const PROXY_SECRET_HEADER = 'x-ctll-proxy-secret';

/**
 * `POST` here when api-backend is about to restart: the proxy closes its WebSocket tunnels (they
 * all pass through api-backend) with RELAY_RESTART_CLOSE, and each bridge reconnects at once.
 */
export const TUNNELS_RECONNECT_PATH = '/tunnels/reconnect';
/** WebSocket close 1012 "Service Restart" (RFC 6455 registry): come back shortly, no backoff. */
export const RELAY_RESTART_CLOSE = Object.freeze({ code: 1012, reason: 'relay restarting' });

export type TunnelTransport = 'ws' | 'poll';

export interface DesktopInfo {
  id: string;
  transport: string;
  connectedAt: string;
  client: string;
  activeStreams: number;
  /** The session's counts so far, so a stop that ends the link still reaches the audit with them. */
  requests?: number;
  bytesToDesktop?: number;
  bytesFromDesktop?: number;
  /** The bridge's latest report of its local LLM server; absent until it sends one. */
  target?: TargetHealth;
}

export interface ProxyStatus {
  status: string;
  startedAt: string;
  /** The path requests take now: a desktop tunnel, a zrok share, or none. */
  transport: TunnelTransport | 'zrok' | null;
  desktops: DesktopInfo[];
  activeRequests: number;
  requests: number;
  bytesToDesktop: number;
  bytesFromDesktop: number;
  lastActivityAt: string;
  /** The target as reported by the desktop requests go to now; null when none has reported. */
  target?: TargetHealth | null;
}

export interface TunnelOpened {
  seq: number;
  type: 'tunnel_opened';
  at: string;
  link: string;
  transport: TunnelTransport;
  client: string;
}

export interface TunnelClosed {
  seq: number;
  type: 'tunnel_closed';
  at: string;
  link: string;
  transport: TunnelTransport;
  requests: number;
  bytesToDesktop: number;
  bytesFromDesktop: number;
  reason: string;
}

export type JournalEvent = TunnelOpened | TunnelClosed;

export interface JournalPage {
  events: JournalEvent[];
  lastSeq: number;
  /** Events the journal discarded unread since the proxy started (its ring overflowed). */
  dropped: number;
}
