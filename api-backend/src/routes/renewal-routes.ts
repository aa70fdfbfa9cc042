/**
 * `POST /api/renewals/:ownerHash`: a user's streaming-proxy asking whether a token a desktop sent
 * in-band (`{type: 'token'}` on its WebSocket tunnel) renews that tunnel. api-backend checks it
 * with the one Authenticator every other credential goes through, and that its subject is the
 * proxy's owner: a desktop cannot swap its tunnel over to another user's credential.
 *
 * Mounted before the JWT middleware: the caller is the proxy, proving itself with its own secret
 * like `GET /api/zrok/discover/:userId`. The verdict is always a 200 with `accepted` true or
 * false, so a refused renewal is neither counted against the proxy's address as a failed sign-in
 * nor confused with the proxy's own credentials failing (a 401 here means the secret is wrong).
 */
import { Router, type NextFunction, type Request, type Response } from 'express';
import { z } from 'zod';
import { BadRequestError, RENEWAL_PATH, RenewalErrorCode, RelayError, UnauthorizedError, type RenewalVerdict } from '@ctll/protocol';
import type { Authenticator } from '../auth/authenticator';
import type { ProxySecrets } from '../proxy/proxy-secrets';
import { SECRET_HEADER } from '../proxy/proxy-client';
import { userHash } from '../proxy/naming';
import { jsonBody } from '../http/json-body';
import type { Logger } from '../logger';

const body = z.object({ token: z.string().min(1).max(8192) });

export function renewalRoutes(auth: Authenticator, secrets: ProxySecrets, logger: Logger): Router {
  const router = Router();

  // The secret first: a stranger's body is never read.
  const fromOwnersProxy = (req: Request, _res: Response, next: NextFunction) => {
    const given = req.headers[SECRET_HEADER];
    const ownerHash = req.params.ownerHash;
    if (/^[0-9a-f]{16}$/.test(ownerHash) && typeof given === 'string' && secrets.verify(ownerHash, given)) return next();
    req.resume();
    next(new UnauthorizedError("this route answers a user's streaming proxy only"));
  };

  router.post(`${RENEWAL_PATH}/:ownerHash`, fromOwnersProxy, jsonBody(16 * 1024), async (req, res, next) => {
    try {
      const ownerHash = req.params.ownerHash;
      const parsed = body.safeParse(req.body);
      if (!parsed.success) throw new BadRequestError('the body must be {"token": "..."}');
      res.json(await verdict(parsed.data.token, ownerHash));
    } catch (error) {
      next(error);
    }

    async function verdict(token: string, ownerHash: string): Promise<RenewalVerdict> {
      try {
        const caller = await auth.verify(token, req);
        if (userHash(caller.userId) !== ownerHash) {
          logger.warn('refused a tunnel renewal for another user', { owner: ownerHash, other: userHash(caller.userId) });
          return { accepted: false, code: RenewalErrorCode.WrongUser, message: 'the token is for another user than this tunnel' };
        }
        return { accepted: true, expiresAt: caller.expiresAt ?? null };
      } catch (error) {
        // A refused token is the desktop's problem; keys we cannot fetch are ours, and say so.
        if (error instanceof UnauthorizedError) return { accepted: false, code: RenewalErrorCode.Invalid, message: error.message };
        const message = error instanceof RelayError ? (error.publicMessage ?? error.message) : 'internal error';
        if (!(error instanceof RelayError)) logger.error('tunnel renewal failed', { error: (error as Error).message });
        return { accepted: false, code: RenewalErrorCode.Unavailable, message };
      }
    }
  });

  return router;
}
