import { z } from 'zod';
import { targetHealthSchema } from './target';
import { WINDOW_MINUTES } from './minute-ring';

/**
 * The streaming-proxy's own small HTTP API, as api-backend reads it: `GET /status` and
 * `GET /events`. Declared once here so the proxy that answers and api-backend that asks cannot
 * drift apart. (The proxy answers only api-backend, which proves itself with PROXY_SECRET_HEADER.)
 */

export const PROXY_SECRET_HEADER = 'x-ctll-proxy-secret';

/**
 * `POST` here when api-backend is about to restart: the proxy closes the WebSocket tunnels that
 * run through that api-backend with RELAY_RESTART_CLOSE, and each of their bridges reconnects at
 * once. The request names the api-backend process in RELAY_INSTANCE_HEADER; one naming none closes
 * every WebSocket tunnel.
 */
export const TUNNELS_RECONNECT_PATH = '/tunnels/reconnect';
/**
 * Which api-backend process relays a tunnel: a random id per process, sent on the tunnel's upgrade
 * and on its reconnect request. With several replicas a draining one closes only the tunnels
 * spliced through itself; those through the other replicas stay open.
 */
export const RELAY_INSTANCE_HEADER = 'x-ctll-relay-instance';
/** What a relay instance id may look like (a UUID in practice); anything else is ignored. */
export const RELAY_INSTANCE_PATTERN = /^[0-9A-Za-z-]{1,64}$/;
/** WebSocket close 1012 "Service Restart" (RFC 6455 registry): come back shortly, no backoff. */
export const RELAY_RESTART_CLOSE = Object.freeze({ code: 1012, reason: 'relay restarting' });

export type TunnelTransport = 'ws' | 'poll';

// The answers below are zod schemas: the proxy builds them as these types, api-backend parses
// them (parseProxyAnswer), so a proxy that drifted is an error naming the field, never a cast.

const tunnelTransport = z.enum(['ws', 'poll']);
const isoTime = z.string();

/**
 * A WebSocket tunnel's round trip, from the proxy's pings and the desktop's pongs: the latest and
 * the mean of the last few (tunnel/round-trip.ts). Long-poll links have no ping to time.
 */
export const tunnelRttSchema = z.object({ latestMs: z.number(), averageMs: z.number(), samples: z.number().int() });
export type TunnelRtt = z.infer<typeof tunnelRttSchema>;

export const desktopInfoSchema = z.object({
  id: z.string(),
  /** `ws` or `poll` for a desktop tunnel, `zrok` for a healthy share. */
  transport: z.enum(['ws', 'poll', 'zrok']),
  connectedAt: isoTime,
  client: z.string(),
  activeStreams: z.number(),
  /** The session's counts so far, so a stop that ends the link still reaches the audit with them. */
  requests: z.number().optional(),
  bytesToDesktop: z.number().optional(),
  bytesFromDesktop: z.number().optional(),
  /** The bridge's latest report of its local LLM server; absent until it sends one. */
  target: targetHealthSchema.optional(),
  /** WebSocket links only, once the desktop has answered a ping. */
  rtt: tunnelRttSchema.optional(),
});
export type DesktopInfo = z.infer<typeof desktopInfoSchema>;

/** What the proxy has seen of the user's zrok shares (never their URLs). */
export const proxyZrokStatusSchema = z.object({
  /** The share requests go to when no desktop tunnel is connected, if any is healthy. */
  inUse: z.string().nullable(),
  shares: z.array(
    z.object({ shareId: z.string(), healthy: z.boolean().nullable(), checkedAt: isoTime.nullable(), error: z.string().optional() }),
  ),
  lastDiscoveryAt: isoTime.nullable(),
  discoveryError: z.string().optional(),
  activeRequests: z.number(),
});
export type ProxyZrokStatus = z.infer<typeof proxyZrokStatusSchema>;

/** `GET /status`. */
export const proxyStatusSchema = z.object({
  status: z.string(),
  startedAt: isoTime,
  /** The path requests take now: a desktop tunnel, a zrok share, or none. */
  transport: z.enum(['ws', 'poll', 'zrok']).nullable(),
  desktops: z.array(desktopInfoSchema),
  /** null: the proxy does not look for shares (api-backend's address is not known to it). */
  zrok: proxyZrokStatusSchema.nullable(),
  activeRequests: z.number(),
  requests: z.number(),
  bytesToDesktop: z.number(),
  bytesFromDesktop: z.number(),
  lastActivityAt: isoTime,
  /** The target as reported by the desktop requests go to now; null when none has reported. */
  target: targetHealthSchema.nullable().optional(),
  /** The proxy's resident memory in bytes, as it measures itself (absent from proxies older than this field). */
  memoryBytes: z.number().optional(),
  /** The round trip of the tunnel requests go to now; null: none measured (long-poll, zrok, no pong yet). Absent from older proxies. */
  rtt: tunnelRttSchema.nullable().optional(),
});
export type ProxyStatus = z.infer<typeof proxyStatusSchema>;

/**
 * `GET /health`, the one route that needs no secret: api-backend asks it when a proxy starts and
 * when it adopts one an earlier api-backend left running, and uses a proxy only if it speaks this
 * api-backend's PROTOCOL_VERSION (api-backend/src/proxy/wait-healthy.ts).
 */
export const proxyHealthSchema = z.object({
  status: z.literal('ok'),
  /** The tunnel protocol the proxy speaks; absent from proxies released before it was reported (they speak 1). */
  protocolVersion: z.number().int().positive().optional(),
});
export type ProxyHealth = z.infer<typeof proxyHealthSchema>;

/** Proxies released before /health named a version speak version 1. */
export const UNNAMED_PROXY_PROTOCOL_VERSION = 1;

/** `GET` here: the user's traffic today and per minute over the last hour, as the proxy counted it. */
export const PROXY_USAGE_PATH = '/usage';
const usageCounts = {
  /** Relayed requests (through the tunnel or a zrok share). */
  requests: z.number(),
  /** Body bytes sent to the desktop (uploads, prompts). */
  bytesToDesktop: z.number(),
  /** Body bytes the desktop answered (generations). */
  bytesFromDesktop: z.number(),
};

export const usageMinuteSchema = z.object({ at: isoTime, ...usageCounts });
export type UsageMinute = z.infer<typeof usageMinuteSchema>;

/**
 * `GET /usage`. The user's proxy is the one place every api-backend replica's traffic for that
 * user passes, so the counts live there; a proxy that stopped (idle, or by request) took its
 * counts with it, which `today.since` says.
 */
export const proxyUsageSchema = z.object({
  /** Since midnight UTC, or since the proxy started if that was later (`since`). */
  today: z.object({ since: isoTime, ...usageCounts }),
  /** The last WINDOW_MINUTES minutes, oldest first, the current one last, each from its start (`at`); quiet minutes are zeros. */
  minutes: z.array(usageMinuteSchema).max(WINDOW_MINUTES),
});
export type ProxyUsage = z.infer<typeof proxyUsageSchema>;

/** `GET /api/me/usage` (api-backend): the caller's proxy's usage; `running: false`, and no counts, when none runs. */
export const meUsageSchema = z.discriminatedUnion('running', [proxyUsageSchema.extend({ running: z.literal(true) }), z.object({ running: z.literal(false) })]);
export type MeUsage = z.infer<typeof meUsageSchema>;

export const tunnelOpenedSchema = z.object({
  seq: z.number(),
  type: z.literal('tunnel_opened'),
  at: isoTime,
  link: z.string(),
  transport: tunnelTransport,
  client: z.string(),
  /** The id of the relay key that opened the tunnel; absent: the user's own token. */
  keyId: z.string().optional(),
});
export type TunnelOpened = z.infer<typeof tunnelOpenedSchema>;

export const tunnelClosedSchema = z.object({
  seq: z.number(),
  type: z.literal('tunnel_closed'),
  at: isoTime,
  link: z.string(),
  transport: tunnelTransport,
  requests: z.number(),
  bytesToDesktop: z.number(),
  bytesFromDesktop: z.number(),
  reason: z.string(),
});
export type TunnelClosed = z.infer<typeof tunnelClosedSchema>;

export const journalEventSchema = z.discriminatedUnion('type', [tunnelOpenedSchema, tunnelClosedSchema]);
export type JournalEvent = z.infer<typeof journalEventSchema>;

/** `GET /events?after=N`. */
export const journalPageSchema = z.object({
  events: z.array(journalEventSchema),
  lastSeq: z.number(),
  /** Events the journal discarded unread since the proxy started (its ring overflowed). */
  dropped: z.number(),
});
export type JournalPage = z.infer<typeof journalPageSchema>;

/** `POST /zrok/refresh`: the zrok part of the status, after a pull and a check of every share. */
export const zrokRefreshAnswerSchema = z.object({ zrok: proxyZrokStatusSchema.nullable() });
export type ZrokRefreshAnswer = z.infer<typeof zrokRefreshAnswerSchema>;

/** `POST /tunnels/reconnect`: how many WebSocket tunnels were closed. */
export const reconnectAnswerSchema = z.object({ closed: z.number() });
export type ReconnectAnswer = z.infer<typeof reconnectAnswerSchema>;

export class ProxyAnswerError extends Error {}

/** A proxy's JSON answer, checked against its schema; a mismatch names the route and the fields. */
export function parseProxyAnswer<T>(schema: z.ZodType<T>, what: string, text: string): T {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ProxyAnswerError(`proxy ${what} answered with something other than JSON`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const fields = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(answer)'}: ${issue.message}`).join('; ');
    throw new ProxyAnswerError(`proxy ${what} answered an unexpected shape: ${fields}`);
  }
  return parsed.data;
}
