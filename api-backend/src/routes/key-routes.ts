/**
 * `/api/keys`: the caller's relay keys. `POST` makes one and shows it this once, `GET` lists them
 * (never a key or its hash), `DELETE /api/keys/:id` revokes one and, before answering, has the
 * tunnels it opened closed (auth/revoked-key-links.ts). Only a user's own token reaches
 * these routes (key-scopes.ts refuses every relay key here), and the user is always its subject.
 */
import { Router } from 'express';
import { z } from 'zod';
import { BadRequestError, RELAY_KEY_SCOPES } from '@ctll/protocol';
import type { Caller } from '../auth/authenticator';
import type { NewKey, RelayKeys } from '../auth/relay-keys';
import type { OnKeyRevoked } from '../auth/revoked-key-links';
import { jsonBody } from '../http/json-body';

const BODY_LIMIT_BYTES = 4 * 1024;

const newKeySchema = z
  .object({
    name: z.string().trim().min(1).max(100),
    scope: z.enum(RELAY_KEY_SCOPES),
    /** ISO 8601 with a time zone, in the future; absent: the key does not expire. */
    expiresAt: z.iso.datetime({ offset: true }).optional(),
  })
  .strict();

export function keyRoutes(keys: RelayKeys, onRevoked: OnKeyRevoked = () => Promise.resolve()): Router {
  const router = Router();

  router.post('/api/keys', jsonBody(BODY_LIMIT_BYTES), async (req, res, next) => {
    try {
      const created = await keys.create((res.locals.caller as Caller).userId, parseNewKey(req.body));
      res.status(201).json(created);
    } catch (error) {
      next(error);
    }
  });

  router.get('/api/keys', async (_req, res, next) => {
    try {
      res.json({ keys: await keys.list((res.locals.caller as Caller).userId) });
    } catch (error) {
      next(error);
    }
  });

  router.delete('/api/keys/:id', async (req, res, next) => {
    try {
      const { userId } = res.locals.caller as Caller;
      await keys.revoke(userId, req.params.id);
      await onRevoked(userId, req.params.id);
      res.status(204).end();
    } catch (error) {
      next(error);
    }
  });

  return router;
}

function parseNewKey(body: unknown): NewKey {
  const parsed = newKeySchema.safeParse(body);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => `${issue.path.join('.') || 'body'}: ${issue.message}`).join('; ');
    throw new BadRequestError(`expected {"name": "...", "scope": "bridge" | "call", "expiresAt"?: ISO 8601 time}: ${issues}`);
  }
  const { name, scope, expiresAt } = parsed.data;
  const expires = expiresAt === undefined ? undefined : new Date(expiresAt);
  if (expires && expires.getTime() <= Date.now()) throw new BadRequestError('expiresAt: must be in the future');
  return { name, scope, expiresAt: expires };
}
