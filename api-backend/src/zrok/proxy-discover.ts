/**
 * `GET /api/zrok/discover/:userId`: a user's streaming-proxy asking for that user's shares.
 *
 * It is mounted before the JWT middleware because its caller is not a person: the proxy proves
 * itself with its own secret (`x-ctll-proxy-secret`, the one api-backend gave it at start). That
 * secret is derived from the owner hash under the relay's key (proxy-secrets.ts), so checking it
 * is a computation: an anonymous caller costs no Docker engine call, whatever it sends. A user
 * token is never enough, not even the user's own: people list their shares with
 * `GET /api/zrok/discover`.
 *
 * The proxy never learns the raw user id (only its hash), so `:userId` may be either the user id
 * or that 16-hex hash; whichever the secret was made for wins.
 */
import { Router } from 'express';
import { ForbiddenError, UnauthorizedError } from '@ctll/protocol';
import type { ProxySecrets } from '../proxy/proxy-secrets';
import { SECRET_HEADER } from '../proxy/proxy-client';
import { userHash } from '../proxy/naming';
import type { ShareRegistry } from './registry';
import { proxyView } from './views';

export const PROXY_DISCOVER_PATH = '/api/zrok/discover/:userId';

export function proxyDiscoverRoutes(registry: ShareRegistry, secrets: ProxySecrets): Router {
  const router = Router();

  router.get(PROXY_DISCOVER_PATH, async (req, res, next) => {
    try {
      const given = req.headers[SECRET_HEADER];
      if (typeof given !== 'string' || given === '') {
        if (req.headers.authorization) {
          throw new ForbiddenError("this route answers the user's streaming proxy only; list your own shares with GET /api/zrok/discover");
        }
        throw new UnauthorizedError(`this route needs the ${SECRET_HEADER} header of the user's streaming proxy`);
      }
      const owner = ownerWithSecret(secrets, req.params.userId, given);
      if (!owner) throw new UnauthorizedError("the proxy secret does not match this user's streaming proxy");
      res.json({ tunnels: (await registry.list(owner)).map(proxyView) });
    } catch (error) {
      next(error);
    }
  });

  return router;
}

/** The owner hash whose proxy's secret is `secret`, trying `:userId` as an id and as a hash. */
function ownerWithSecret(secrets: ProxySecrets, userId: string, secret: string): string | undefined {
  const candidates = [userHash(userId)];
  if (/^[0-9a-f]{16}$/.test(userId)) candidates.push(userId);
  let match: string | undefined;
  // Every candidate is checked, so timing says nothing about which one matched.
  for (const ownerHash of candidates) if (secrets.verify(ownerHash, secret)) match ??= ownerHash;
  return match;
}
