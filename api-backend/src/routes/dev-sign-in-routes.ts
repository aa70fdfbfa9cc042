/**
 * `POST /api/auth/dev-token`, dev auth only: the web console's dev sign-in. The relay's dev issuer
 * signs a token for the user id typed in, exactly what `npm run token -- <user>` prints, so the
 * quick start reaches the console without an identity provider. Mounted only when the relay runs
 * dev auth (never in production, which refuses dev auth), and answered only to a browser on this
 * machine: a dev relay listening on 0.0.0.0 must not hand any user's token to its whole network.
 */
import { Router, type Request } from 'express';
import { z } from 'zod';
import { BadRequestError, classifyAddress, DEV_TOKEN_PATH, ForbiddenError, type DevTokenResponse } from '@ctll/protocol';
import { signDevToken, type DevKeys } from '../auth/dev-keys';
import { jsonBody } from '../http/json-body';

/** A console session's token lasts a working day at most; the console forgets it on reload anyway. */
const CONSOLE_TOKEN_LIFETIME_S = 8 * 3600;

const bodySchema = z.object({ userId: z.string().trim().min(1).max(200) }).strict();

export interface DevSignInOptions {
  keys: DevKeys;
  issuer: string;
  audience: string;
  maxLifetimeS: number;
}

export function devSignInRoutes(options: DevSignInOptions): Router {
  const router = Router();
  router.post(DEV_TOKEN_PATH, jsonBody(1024), (req, res, next) => {
    try {
      if (!fromThisMachine(req)) throw new ForbiddenError('dev sign-in works only from a browser on the relay\'s own machine; elsewhere paste a token from `npm run token -- <user>`');
      const parsed = bodySchema.safeParse(req.body);
      if (!parsed.success) throw new BadRequestError('expected {"userId": "..."}');
      const lifetimeS = Math.min(CONSOLE_TOKEN_LIFETIME_S, options.maxLifetimeS);
      const token = signDevToken(options.keys, { sub: parsed.data.userId, issuer: options.issuer, audience: options.audience, expiresInSeconds: lifetimeS });
      const body: DevTokenResponse = { token, userId: parsed.data.userId, expiresAt: new Date(Date.now() + lifetimeS * 1000).toISOString() };
      res.set('cache-control', 'no-store').json(body);
    } catch (error) {
      next(error);
    }
  });
  return router;
}

/** Both the connection's peer and the client it speaks for (TRUST_PROXY applied) are loopback. */
function fromThisMachine(req: Request): boolean {
  return classifyAddress(req.socket.remoteAddress ?? '') === 'loopback' && classifyAddress(req.ip ?? '') === 'loopback';
}
