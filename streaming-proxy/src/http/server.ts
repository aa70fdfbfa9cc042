/**
 * The proxy's HTTP surface. It answers only api-backend (every route but /health checks the
 * per-proxy secret):
 *   GET  /health       liveness for the container's HEALTHCHECK; says nothing about the user
 *   GET  /status       desktops connected, active requests, counters, last activity
 *   GET  /events       the session journal after a sequence number (?after=N), for the audit
 *   GET  /usage        the user's requests and bytes today and per minute over the last hour
 *   POST /zrok/refresh pull the user's zrok shares and check them now (api-backend, on register)
 *   POST /tunnels/reconnect  an api-backend is restarting: close the WebSocket tunnels it relays with 1012
 *   POST /credentials/revoked  a relay key was revoked: close the links it opened (credentials/key-links.ts)
 *   GET  /ws/tunnel    WebSocket upgrade: a desktop's tunnel, forwarded by api-backend (a child
 *                      proxy of the process driver is handed the desktop's socket instead)
 *   GET  /link         WebSocket upgrade: api-backend's frame link, which carries every relayed
 *                      request (upstream/): to the desktop's tunnel (WebSocket, then polling),
 *                      else a healthy zrok share it registered (zrok/zrok-path.ts), else 503
 *   /bridge/...        the long-poll transport (register, poll, respond, heartbeat), for an
 *                      api-backend that does not send those calls on the frame link
 *
 * Relayed requests and new desktop links pass the user's limits first (limits/user-limits.ts).
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import {
  CREDENTIAL_EXPIRES_HEADER,
  CREDENTIAL_KEY_HEADER,
  KEY_REVOKED_PATH,
  MAX_FRAME_BYTES,
  PROXY_LINK_PATH,
  PROXY_USAGE_PATH,
  parseCredentialExpiry,
  RELAY_INSTANCE_HEADER,
  RELAY_INSTANCE_PATTERN,
  RELAY_RESTART_CLOSE,
  saysWhole,
  TUNNELS_RECONNECT_PATH,
  UnauthorizedError,
  type RelayError,
  WHOLE_FRAMES_HEADER,
  WHOLE_FRAMES_HEADER_VALUE,
  declaredWindow,
  growingWindows,
  MAX_STREAM_WINDOW,
  STREAM_WINDOW_HEADER,
  WindowBudget,
} from '@ctll/protocol';
import type { ProxyConfig } from '../config';
import type { Logger } from '../logger';
import type { ProxyStats } from '../stats';
import type { TunnelHub } from '../tunnel/hub';
import type { Journal } from '../tunnel/journal';
import { WsLink } from '../tunnel/ws-link';
import { secretChecker } from './secret';
import { bridgeRoutes } from './bridge-routes';
import { refuseUpgrade, sendError, sendJson } from './respond';
import { UserLimits } from '../limits/user-limits';
import type { ZrokPath } from '../zrok/zrok-path';
import { renewalClient, type VerifyRenewal } from '../credentials/renewal-client';
import { KeyLinks } from '../credentials/key-links';
import { keyRevoked } from '../credentials/key-revoked-route';
import { upstreamLinks } from '../upstream/upstream-link';
import type { AcceptDesktop, HandedTunnels } from './handed-tunnels';
import type { JournalPage, ProxyHealth, ProxyStatus, ProxyUsage, ReconnectAnswer, ZrokRefreshAnswer } from '@ctll/protocol';

export interface ProxyServerDeps {
  config: ProxyConfig;
  logger: Logger;
  stats: ProxyStats;
  hub: TunnelHub;
  journal: Journal;
  /** The fallback to the user's zrok shares; absent when api-backend's address is not known. */
  zrok?: ZrokPath;
  /** Checks a tunnel's renewal token; by default api-backend does, at API_BACKEND_URL. */
  verifyRenewal?: VerifyRenewal;
  /** Tunnels api-backend hands over as sockets, when it is our parent process (handed-tunnels.ts). */
  handOffs?: HandedTunnels;
}

export function createProxyServer({ config, logger, stats, hub, journal, zrok, verifyRenewal, handOffs }: ProxyServerDeps): http.Server {
  const isApiBackend = secretChecker(config.secret);
  const verify = verifyRenewal ?? renewalClient({ apiBackendUrl: config.zrok.apiBackendUrl, userHash: config.userHash, secret: config.secret });
  const startedAt = Date.now();
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_FRAME_BYTES,
    // Tokens are small and latency matters more than bytes; compression also invites CRIME-style leaks.
    perMessageDeflate: false,
    clientTracking: false,
  });
  // A bridge that offers whole frames hears on the 101 that this proxy takes them (tunnel-whole.ts);
  // one that grows windows hears how far this proxy grows its own (stream-window.ts).
  wss.on('headers', (headers, req) => {
    if (saysWhole(req.headers[WHOLE_FRAMES_HEADER])) headers.push(`${WHOLE_FRAMES_HEADER}: ${WHOLE_FRAMES_HEADER_VALUE}`);
    if (declaredWindow(req.headers[STREAM_WINDOW_HEADER]) !== undefined) headers.push(`${STREAM_WINDOW_HEADER}: ${MAX_STREAM_WINDOW}`);
  });

  // One budget for all this user's tunnels: it bounds what grown windows add to this proxy's memory.
  const windowBudget = new WindowBudget();
  const limits = new UserLimits(config.limits, { pingIntervalMs: config.pingIntervalMs, pollGraceMs: config.pollGraceMs });
  const keyLinks = new KeyLinks();
  const bridge = bridgeRoutes(config, hub, limits, logger, keyLinks, windowBudget);
  const acceptUpstream = upstreamLinks({ config, hub, stats, limits, logger, zrok, bridge });

  const server = http.createServer((req, res) => {
    handle(req, res).catch((error: Error) => {
      logger.error('request failed', { error: error.message });
      sendError(res, 'internal', 'internal error');
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    if (req.method === 'GET' && url === '/health') {
      const health: ProxyHealth = { status: 'ok', protocolVersion: config.protocolVersion };
      sendJson(res, 200, health);
      return;
    }
    if (!isApiBackend(req)) {
      sendError(res, 'unauthorized', 'this proxy answers api-backend only');
      req.resume();
      return;
    }
    if (req.method === 'GET' && url === '/status') {
      const status: ProxyStatus = {
        status: 'running',
        startedAt: new Date(startedAt).toISOString(),
        // The path requests take now; desktops lists every way to the desktop, healthy shares included.
        transport: hub.transport() ?? zrok?.transport() ?? null,
        desktops: [...hub.info(), ...(zrok?.desktops() ?? [])],
        zrok: zrok?.status() ?? null,
        activeRequests: stats.activeExchanges,
        requests: stats.requests,
        bytesToDesktop: stats.bytesToDesktop,
        bytesFromDesktop: stats.bytesFromDesktop,
        lastActivityAt: new Date(stats.lastActivityAt).toISOString(),
        // How the local LLM server of the desktop requests go to is doing, as its bridge last said.
        target: hub.current()?.correlator.target ?? null,
        memoryBytes: process.memoryUsage.rss(),
        rtt: hub.current()?.roundTrip?.snapshot() ?? null,
      };
      sendJson(res, 200, status);
      return;
    }
    if (req.method === 'GET' && url === PROXY_USAGE_PATH) {
      const usage: ProxyUsage = stats.usage.snapshot();
      sendJson(res, 200, usage);
      return;
    }
    if (req.method === 'GET' && (url === '/events' || url.startsWith('/events?'))) {
      const after = Number(new URL(url, 'http://proxy').searchParams.get('after') ?? 0);
      const page: JournalPage = { events: journal.since(Number.isFinite(after) ? after : 0), lastSeq: journal.lastSeq, dropped: journal.dropped };
      sendJson(res, 200, page);
      return;
    }
    if (req.method === 'POST' && url === '/zrok/refresh') {
      req.resume();
      if (zrok) await zrok.refreshNow();
      const answer: ZrokRefreshAnswer = { zrok: zrok?.status() ?? null };
      sendJson(res, 200, answer);
      return;
    }
    if (req.method === 'POST' && url === TUNNELS_RECONNECT_PATH) {
      req.resume();
      const relay = relayInstance(req);
      const closed = hub.closeWebSockets(RELAY_RESTART_CLOSE.code, RELAY_RESTART_CLOSE.reason, relay);
      logger.info('api-backend restarting: WebSocket tunnels closed for their bridges to reconnect', { closed, relay: relay ?? 'any' });
      const answer: ReconnectAnswer = { closed };
      sendJson(res, 200, answer);
      return;
    }
    if (req.method === 'POST' && url === KEY_REVOKED_PATH) {
      await keyRevoked(req, res, keyLinks, logger);
      return;
    }
    if (url.startsWith('/bridge/')) {
      if (await bridge(req, res, url.split('?')[0])) return;
    }
    sendError(res, 'not_found', `no route ${req.method} ${url.split('?')[0]}`);
    req.resume();
  }

  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    if (isApiBackend(req) && (req.url ?? '').split('?')[0] === PROXY_LINK_PATH) {
      acceptUpstream(req, socket, head);
      return;
    }
    acceptDesktop(req, socket, head);
  });

  /** A desktop's tunnel: relayed to our port by api-backend, or handed to us as its socket (`watch` then hears how it went). */
  const acceptDesktop: AcceptDesktop = (req, socket, head, watch) => {
    const refuse = (error: RelayError) => {
      watch?.refused(error);
      refuseUpgrade(socket, error);
    };
    if (!isApiBackend(req) || (req.url ?? '').split('?')[0] !== '/ws/tunnel') {
      refuse(new UnauthorizedError('this proxy answers api-backend only'));
      return;
    }
    const keyId = headerValue(req.headers[CREDENTIAL_KEY_HEADER]);
    if (keyLinks.isRevoked(keyId)) {
      refuse(new UnauthorizedError('invalid, revoked or expired relay key'));
      return;
    }
    const refused = limits.admitLink('ws', hub.count('ws'));
    if (refused) {
      logger.info('WebSocket tunnel refused by a user limit', { code: refused.code, open: hub.count('ws') });
      refuse(refused);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      watch?.accepted();
      const link = new WsLink(ws, {
        id: hub.newLinkId(),
        client: describeClient(req),
        pingIntervalMs: config.pingIntervalMs,
        maxStreams: config.maxStreamsPerTunnel,
        logger,
        credentialExpiresAt: parseCredentialExpiry(req.headers[CREDENTIAL_EXPIRES_HEADER]),
        tokenGraceMs: config.tokenExpiryGraceMs,
        whole: saysWhole(req.headers[WHOLE_FRAMES_HEADER]),
        windows: growingWindows(req.headers[STREAM_WINDOW_HEADER], windowBudget),
        verifyRenewal: verify,
        onClose: (closed, code, reason) => hub.remove(closed, code, reason),
        onTraffic: () => stats.touch(),
      }, socket);
      hub.add(link, keyId, relayInstance(req));
      keyLinks.track(link, keyId);
    });
  };
  handOffs?.serve(acceptDesktop);

  // Longer than api-backend's pooled keep-alive sockets live, so the pool never reuses a socket we just closed.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  // Uploads and generations may run long; silence is bounded by REQUEST_TIMEOUT_MS per exchange.
  server.requestTimeout = 0;
  server.on('connection', (socket) => socket.setNoDelay(true));
  return server;
}

/** A single header's value (a repeated one is nobody's). */
function headerValue(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** The api-backend process a request names (RELAY_INSTANCE_HEADER), if it names one well-formed. */
function relayInstance(req: http.IncomingMessage): string | undefined {
  const value = headerValue(req.headers[RELAY_INSTANCE_HEADER]);
  return value !== undefined && RELAY_INSTANCE_PATTERN.test(value) ? value : undefined;
}

function describeClient(req: http.IncomingMessage): string {
  const agent = req.headers['user-agent'] ?? 'unknown';
  return agent.replace(/[^\x20-\x7e]/g, '').slice(0, 200);
}
