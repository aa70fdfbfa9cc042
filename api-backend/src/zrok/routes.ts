/**
 * The zrok routes a person's desktop (or the person) calls, all behind the JWT middleware, all
 * about the caller's own shares: register, discover, heartbeat, unregister, health.
 *
 * Registering or heartbeating also makes sure the user's proxy runs: a desktop that offers only
 * a share still needs the proxy that forwards to it (the tunnel routes never start one). The
 * proxy-facing `discover/:userId` lives in proxy-discover.ts, outside the JWT middleware.
 */
import { Router, type Request } from 'express';
import { z } from 'zod';
import { BadRequestError } from '@ctll/protocol';
import type { Caller } from '../auth/authenticator';
import type { StreamingProxyManager } from '../proxy/manager';
import type { ProxyClient } from '../proxy/proxy-client';
import { userHash } from '../proxy/naming';
import { jsonBody } from '../http/json-body';
import { SHARE_ID_PATTERN, type ShareRegistry } from './registry';
import { MAX_URL_LENGTH, validateLocalUrl, validatePublicUrl, type SharePolicy } from './share-url';
import { ownerView } from './views';
import { currentView, observe, refreshView } from './proxy-view';

export interface ZrokRouteDeps {
  registry: ShareRegistry;
  manager: StreamingProxyManager;
  client: ProxyClient;
  policy: SharePolicy;
}

const BODY_LIMIT_BYTES = 16 * 1024;
const TUNNEL_ID = z.string().regex(SHARE_ID_PATTERN, 'must be a tunnel id from /api/zrok/register');

const registerBody = z.object({
  tunnelInfo: z.object({
    publicUrl: z.string().max(MAX_URL_LENGTH),
    localUrl: z.string().max(MAX_URL_LENGTH).optional(),
    shareToken: z
      .string()
      .regex(/^[\x21-\x7e]{1,256}$/, 'must be 1 to 256 visible ASCII characters')
      .optional(),
  }),
});
const tunnelBody = z.object({ tunnelId: TUNNEL_ID });

export function zrokRoutes({ registry, manager, client, policy }: ZrokRouteDeps): Router {
  const router = Router();
  const owner = (res: { locals: Record<string, unknown> }) => (res.locals.caller as Caller).userId;
  const withTiming = (record: Parameters<typeof ownerView>[0]) => ({
    ...ownerView(record),
    heartbeatIntervalMs: registry.heartbeatIntervalMs,
  });

  router.post('/api/zrok/register', jsonBody(BODY_LIMIT_BYTES), async (req, res, next) => {
    try {
      const userId = owner(res);
      const { tunnelInfo } = parse(registerBody, req.body);
      const publicUrl = await validatePublicUrl(tunnelInfo.publicUrl, policy);
      const localUrl = tunnelInfo.localUrl === undefined ? undefined : validateLocalUrl(tunnelInfo.localUrl);
      const { handle } = await manager.ensure(userId);
      const { record, created } = await registry.register(userHash(userId), { publicUrl, localUrl, shareToken: tunnelInfo.shareToken });
      // The proxy looks now, so it knows the share (and whether it answers) before we reply.
      const seen = handle.endpoint ? await refreshView(client, handle.endpoint) : null;
      res.status(created ? 201 : 200).json({ ...withTiming(record), ...observe(seen, record.tunnelId) });
    } catch (error) {
      next(error);
    }
  });

  router.get('/api/zrok/discover', async (_req, res, next) => {
    try {
      res.json({ tunnels: (await registry.list(userHash(owner(res)))).map(ownerView) });
    } catch (error) {
      next(error);
    }
  });

  router.post('/api/zrok/heartbeat', jsonBody(BODY_LIMIT_BYTES), async (req, res, next) => {
    try {
      const userId = owner(res);
      const record = await registry.heartbeat(userHash(userId), parse(tunnelBody, req.body).tunnelId);
      // The proxy may have been culled or have crashed since the last beat.
      await manager.ensure(userId);
      res.json(withTiming(record));
    } catch (error) {
      next(error);
    }
  });

  router.delete('/api/zrok/unregister', jsonBody(BODY_LIMIT_BYTES), async (req, res, next) => {
    try {
      const userId = owner(res);
      const record = await registry.unregister(userHash(userId), parse(tunnelBody, tunnelIdFrom(req)).tunnelId);
      // The proxy stops using the share now rather than at its next pull.
      const endpoint = await manager.endpoint(userId);
      if (endpoint) await refreshView(client, endpoint);
      res.json({ tunnelId: record.tunnelId, unregistered: true });
    } catch (error) {
      next(error);
    }
  });

  router.get('/api/zrok/health/:tunnelId', async (req, res, next) => {
    try {
      const userId = owner(res);
      const record = await registry.get(userHash(userId), req.params.tunnelId);
      const endpoint = await manager.endpoint(userId);
      const seen = endpoint ? await currentView(client, endpoint) : null;
      res.json({
        tunnelId: record.tunnelId,
        status: 'registered',
        lastHeartbeatAt: new Date(record.lastHeartbeatAt).toISOString(),
        expiresAt: new Date(record.expiresAt).toISOString(),
        proxy: endpoint ? 'running' : 'not-running',
        ...observe(seen, record.tunnelId),
      });
    } catch (error) {
      next(error);
    }
  });

  return router;
}

/** DELETE bodies are dropped by some clients, so `?tunnelId=` works too. */
function tunnelIdFrom(req: Request): unknown {
  const fromQuery = req.query.tunnelId;
  return typeof fromQuery === 'string' ? { tunnelId: fromQuery } : req.body;
}

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body ?? {});
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const where = issue.path.length > 0 ? issue.path.join('.') : 'body';
  throw new BadRequestError(`${where}: ${issue.message}`);
}
