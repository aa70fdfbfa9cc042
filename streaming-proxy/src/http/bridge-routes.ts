/**
 * The polling transport's routes on the proxy (api-backend authenticates the user and forwards
 * `/api/bridge/...` here as `/bridge/...`). A bridge id is the id of its PollLink: random and
 * known only to the user who registered it, whose proxy this is. A registration carrying the
 * `clientId` of an earlier one replaces it: the bridge gave the old one up. Past the user's limit
 * of polling bridges (USER_MAX_POLL_LINKS), a new registration is refused with 429.
 */
import { randomBytes } from 'node:crypto';
import {
  CREDENTIAL_EXPIRES_HEADER,
  CREDENTIAL_KEY_HEADER,
  errorMessage,
  heartbeatBodySchema,
  INITIAL_WINDOW,
  KEY_REVOKED_CLOSE,
  parseCredentialExpiry,
  POLL_STREAM_WINDOW,
  registerBodySchema,
  type PollRegistration,
  type WindowBudget,
} from '@ctll/protocol';
import type { ProxyConfig } from '../config';
import type { Logger } from '../logger';
import type { TunnelHub } from '../tunnel/hub';
import type { UserLimits } from '../limits/user-limits';
import { PollLink } from '../tunnel/poll-link';
import { sendError, sendJson, sendRelayError } from './respond';
import type { KeyLinks } from '../credentials/key-links';
import type { BridgeHandler, BridgeRequest, BridgeResponse } from './bridge-exchange';

const ROUTE = /^\/bridge\/(register|poll|respond|heartbeat|answers)(?:\/([A-Za-z0-9]{1,64}))?(?:\/([A-Za-z0-9_.-]{1,64}))?$/;
const MAX_JSON_BYTES = 64 * 1024;

export function bridgeRoutes(
  config: ProxyConfig,
  hub: TunnelHub,
  limits: UserLimits,
  logger: Logger,
  keyLinks: KeyLinks,
  /** What grown windows may add to this proxy's memory, shared with its WebSocket tunnels (stream-window.ts). */
  windowBudget: WindowBudget,
): BridgeHandler {
  const registration = (bridgeId: string, whole: boolean, answers: boolean, window: number | undefined): PollRegistration => ({
    bridgeId,
    pollTimeoutMs: config.pollTimeoutMs,
    // Heartbeats matter only while the bridge is busy answering and not polling.
    heartbeatIntervalMs: Math.floor(config.pollGraceMs / 3),
    graceMs: config.pollGraceMs,
    maxQueuedRequests: config.pollMaxQueued,
    // Said only to a bridge that offered whole frames: an older one never hears of them.
    ...(whole ? { whole: true } : {}),
    ...(answers ? { answers: true } : {}),
    // Said only to a bridge that offered growing windows (stream-window.ts).
    ...(window !== undefined ? { window } : {}),
  });

  /** Handles the request if it is a bridge route; returns false otherwise. */
  return async (req, res, pathname) => {
    const match = ROUTE.exec(pathname);
    if (!match) return false;
    const [, action, bridgeId, requestId] = match;
    // A request made with a relay key revoked lately ends its link; the bridge is told as on a WebSocket.
    const keyHeader = req.headers[CREDENTIAL_KEY_HEADER];
    const keyId = typeof keyHeader === 'string' ? keyHeader : undefined;
    if (keyLinks.isRevoked(keyId)) {
      req.resume();
      const link = bridgeId ? hub.find(bridgeId) : undefined;
      if (link instanceof PollLink) link.close(KEY_REVOKED_CLOSE.code, KEY_REVOKED_CLOSE.reason);
      sendError(res, 'unauthorized', 'invalid, revoked or expired relay key');
      return true;
    }
    const method = action === 'poll' ? 'GET' : 'POST';
    if (req.method !== method) {
      req.resume();
      sendError(res, 'method_not_allowed', `use ${method} for /api/bridge/${action}`);
      return true;
    }

    if (action === 'register') {
      if (bridgeId) return notFound(req, res, pathname);
      const raw = await readJson(req, res);
      if (res.headersSent) return true;
      const body = registerBodySchema.safeParse(raw);
      if (!body.success) {
        sendError(res, 'bad_request', `register: ${body.error.issues[0]?.path.join('.')} ${body.error.issues[0]?.message}`);
        return true;
      }
      const { clientId, platform, version, whole } = body.data;
      // The most of one stream a poll answer may hold: what the bridge takes, within what we put in one.
      const window = body.data.window === undefined ? undefined : Math.min(body.data.window, POLL_STREAM_WINDOW);
      // Batches hold whole frames: offered without them, they are not taken.
      const answers = whole === true && body.data.answers === true;
      // A bridge registering again (its poll failed, it lost the relay for a moment) has given up
      // on what its old registration held: fail those requests now, not after the grace period.
      if (clientId) {
        for (const { id } of hub.info()) {
          const old = hub.find(id);
          if (old instanceof PollLink && old.clientId === clientId) old.close(1000, 'registered again');
        }
      }
      const refused = limits.admitLink('poll', hub.count('poll'));
      if (refused) {
        logger.info('polling bridge refused by a user limit', { code: refused.code, open: hub.count('poll') });
        sendRelayError(res, refused);
        return true;
      }
      const link: PollLink = new PollLink({
        id: `p${randomBytes(12).toString('hex')}`,
        clientId,
        client: [`ctll-bridge/${version ?? 'unknown'}`, platform && `(${platform})`, clientId && `id=${clientId}`]
          .filter(Boolean)
          .join(' ')
          .replace(/[^\x20-\x7e]/g, ''),
        pollTimeoutMs: config.pollTimeoutMs,
        graceMs: config.pollGraceMs,
        maxQueuedRequests: config.pollMaxQueued,
        maxStreams: config.maxStreamsPerTunnel,
        logger,
        credentialExpiresAt: parseCredentialExpiry(req.headers[CREDENTIAL_EXPIRES_HEADER]),
        tokenGraceMs: config.tokenExpiryGraceMs,
        whole: whole === true,
        answers,
        // `own` stays fixed: a polling bridge's answers are HTTP uploads paced by TCP, and it sends no `blocked`.
        windows: window === undefined ? undefined : { own: INITIAL_WINDOW, peer: window, budget: windowBudget },
        onClose: (closed, code, reason) => hub.remove(closed, code, reason),
      });
      hub.add(link, keyId);
      keyLinks.track(link, keyId);
      sendJson(res, 201, registration(link.id, whole === true, answers, window));
      return true;
    }

    const link = bridgeId ? hub.find(bridgeId) : undefined;
    if (!(link instanceof PollLink) || link.closed) {
      req.resume();
      sendError(res, 'unknown_bridge', errorMessage('unknown_bridge'));
      return true;
    }
    link.credential(parseCredentialExpiry(req.headers[CREDENTIAL_EXPIRES_HEADER]));
    if (action === 'poll' && !requestId) {
      link.poll(req, res);
    } else if (action === 'respond' && requestId) {
      link.respond(requestId, req, res);
    } else if (action === 'answers' && !requestId) {
      link.answers(req, res);
    } else if (action === 'heartbeat' && !requestId) {
      const raw = await readJson(req, res);
      if (res.headersSent) return true;
      const body = heartbeatBodySchema.safeParse(raw);
      if (!body.success) {
        sendError(res, 'bad_request', 'heartbeat body must be {"messages": [...]}');
        return true;
      }
      link.heartbeat(body.data.messages ?? []);
      sendJson(res, 200, { ok: true, activeRequests: link.correlator.size });
    } else {
      return notFound(req, res, pathname);
    }
    return true;
  };
}

function notFound(req: BridgeRequest, res: BridgeResponse, pathname: string): true {
  req.resume();
  sendError(res, 'not_found', `no route ${pathname}`);
  return true;
}

/** Reads a small JSON body; answers 400/413 itself and resolves undefined when it did. */
async function readJson(req: BridgeRequest, res: BridgeResponse): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).byteLength;
    if (size > MAX_JSON_BYTES) {
      sendError(res, 'payload_too_large', `at most ${MAX_JSON_BYTES} bytes`);
      return undefined;
    }
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    sendError(res, 'bad_request', 'the body is not valid JSON');
    return undefined;
  }
}
