/**
 * `GET /api/zrok/discover/:userId`: a user's streaming-proxy asking for that user's shares.
 *
 * It is mounted before the JWT middleware because its caller is not a person: the proxy proves
 * itself with its own secret (`x-ctll-proxy-secret`, the one api-backend gave it at start), which
 * must equal the secret of the proxy the driver runs for `:userId`. A user token is never enough,
 * not even the user's own: people list their shares with `GET /api/zrok/discover`.
 *
 * The proxy never learns the raw user id (only its hash), so `:userId` may be either the user id
 * or that 16-hex hash; whichever names a proxy whose secret matches wins.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { Router } from 'express';
import { ForbiddenError, UnauthorizedError } from '@ctll/protocol';
import type { ProxyDriver } from '../proxy/driver';
import { SECRET_HEADER } from '../proxy/proxy-client';
import { userHash } from '../proxy/naming';
import type { ShareRegistry } from './registry';
import { proxyView } from './views';

export const PROXY_DISCOVER_PATH = '/api/zrok/discover/:userId';

export function proxyDiscoverRoutes(registry: ShareRegistry, driver: ProxyDriver): Router {
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
      const owner = await ownerWithSecret(driver, req.params.userId, given);
      if (!owner) throw new UnauthorizedError("the proxy secret does not match this user's streaming proxy");
      res.json({ tunnels: registry.list(owner).map(proxyView) });
    } catch (error) {
      next(error);
    }
  });

  return router;
}

/** The owner hash whose running proxy holds `secret`, trying `:userId` as an id and as a hash. */
async function ownerWithSecret(driver: ProxyDriver, userId: string, secret: string): Promise<string | undefined> {
  const candidates = [userHash(userId)];
  if (/^[0-9a-f]{16}$/.test(userId)) candidates.push(userId);
  const given = digest(secret);
  let match: string | undefined;
  for (const ownerHash of candidates) {
    const handle = await driver.inspect(ownerHash);
    // The secret is the proof; a proxy still reported as starting may already be asking.
    const expected = handle?.endpoint?.secret;
    // Compared even when there is no proxy, so timing says nothing about who has one.
    const equal = timingSafeEqual(given, digest(expected ?? randomBytes(32).toString('hex')));
    if (equal && expected !== undefined) match ??= ownerHash;
  }
  return match;
}

/** Hashing first gives both sides the same length, as timingSafeEqual needs. */
function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}
