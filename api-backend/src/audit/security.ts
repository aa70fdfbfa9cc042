/**
 * Security events seen at the HTTP edge: a caller refused another user's resource (403) or slowed
 * down (429). Read from each answer's status as it finishes, so every route that refuses or limits
 * is covered without each one remembering to report it. Failed authentication is reported by the
 * Authenticator itself (its onFailure hook), since no caller is known then. Only hashes and the
 * route pattern are kept; the raw path may hold a user id and is never recorded.
 */
import type { NextFunction, Request, Response } from 'express';
import type { Caller } from '../auth/authenticator';
import { userHash } from '../proxy/naming';
import type { SecurityKind } from './records';

export interface SecurityFact {
  kind: SecurityKind;
  reason: string;
  ownerHash?: string;
  targetHash?: string;
  route?: string;
  /** The client address (Express's req.ip, so TRUST_PROXY decides whether X-Forwarded-For counts). */
  source?: string;
}

const TUNNEL_PREFIX = '/api/tunnel/';

export function securityEvents(record: (fact: SecurityFact) => void) {
  return (req: Request, res: Response, next: NextFunction): void => {
    res.on('finish', () => {
      if (res.statusCode !== 403 && res.statusCode !== 429) return;
      const caller = res.locals.caller as Caller | undefined;
      // A relay key used outside its scope: the Authenticator reported it already.
      if (res.locals.authReported === true) return;
      const ownerHash = caller ? userHash(caller.userId) : undefined;
      const route = routeOf(req);
      if (res.statusCode === 429) {
        record({ kind: 'rate_limited', reason: 'status 429', ownerHash, route, source: req.ip });
        return;
      }
      record({ kind: 'cross_user', reason: 'forbidden', ownerHash, targetHash: tunnelOwnerHash(req.originalUrl), route, source: req.ip });
    });
    next();
  };
}

/**
 * The route pattern when Express still knows it, else the path's first two segments, which are
 * fixed words in every route we serve ("/api/tunnel/:userId" for a tunnel): never a user id.
 */
function routeOf(req: Request): string {
  if (typeof req.route?.path === 'string') return req.route.path;
  if (req.originalUrl.startsWith(TUNNEL_PREFIX)) return '/api/tunnel/:userId';
  const [first = '', second = ''] = req.path.split('/').filter(Boolean);
  return first === 'api' && second ? `/api/${second}` : `/${first}`;
}

/** Whose tunnel an /api/tunnel/:userId/... URL names, hashed; undefined for other URLs. */
function tunnelOwnerHash(originalUrl: string): string | undefined {
  if (!originalUrl.startsWith(TUNNEL_PREFIX)) return undefined;
  const segment = originalUrl.slice(TUNNEL_PREFIX.length).split(/[/?]/)[0];
  try {
    return userHash(decodeURIComponent(segment));
  } catch {
    return undefined; // not valid percent-encoding: Express refused it too
  }
}
