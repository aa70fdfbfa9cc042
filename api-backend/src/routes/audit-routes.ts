/**
 * `GET /api/audit/sessions`: the caller's own proxy and tunnel sessions, newest first, a page at a
 * time (`?limit=` 1-100, default 20; `?cursor=` the `next` of the previous page). The caller is
 * always the token's subject: no parameter names a user, so no one can ask for another's history.
 */
import { Router } from 'express';
import { BadRequestError } from '@ctll/protocol';
import type { Caller } from '../auth/authenticator';
import type { Audit } from '../audit/audit';
import type { SessionPage } from '../audit/sessions';
import { userHash } from '../proxy/naming';

export const SESSIONS_DEFAULT_LIMIT = 20;
export const SESSIONS_MAX_LIMIT = 100;

export function auditRoutes(audit: Audit): Router {
  const router = Router();

  router.get('/api/audit/sessions', async (req, res, next) => {
    try {
      const page = parsePage(req.query);
      res.json(await audit.sessions(userHash((res.locals.caller as Caller).userId), page));
    } catch (error) {
      next(error);
    }
  });

  return router;
}

/** Unknown or repeated parameters are refused too: a typo should not silently return page one. */
function parsePage(query: Record<string, unknown>): SessionPage {
  for (const [name, value] of Object.entries(query)) {
    if (name !== 'limit' && name !== 'cursor') throw new BadRequestError(`unknown query parameter "${name}" (expected limit, cursor)`);
    if (typeof value !== 'string') throw new BadRequestError(`${name}: give it once, as a plain value`);
  }
  const { limit, cursor } = query as { limit?: string; cursor?: string };
  const page: SessionPage = { limit: SESSIONS_DEFAULT_LIMIT };
  if (limit !== undefined) {
    if (!/^\d{1,3}$/.test(limit) || Number(limit) < 1 || Number(limit) > SESSIONS_MAX_LIMIT) {
      throw new BadRequestError(`limit: expected a whole number from 1 to ${SESSIONS_MAX_LIMIT}, got "${limit.slice(0, 20)}"`);
    }
    page.limit = Number(limit);
  }
  if (cursor !== undefined) {
    if (cursor === '' || cursor.length > 512) throw new BadRequestError('cursor: not a cursor this server gave out', 'bad_cursor');
    page.cursor = cursor;
  }
  return page;
}
