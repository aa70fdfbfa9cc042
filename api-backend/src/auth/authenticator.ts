/**
 * One verifier for every way a caller proves who they are: HTTP routes and the tunnel's WebSocket
 * upgrade both run the same express-jwt middleware (RS256 only, issuer and audience checked, keys
 * from the JWKS via jwks-rsa). The upgrade path calls the middleware on the raw request before
 * any WebSocket handshake is answered, so a bad token never gets a socket.
 */
import type { IncomingMessage } from 'node:http';
import { expressjwt, UnauthorizedError as JwtUnauthorizedError, type Request as JwtRequest } from 'express-jwt';
import jwksRsa from 'jwks-rsa';
import { ServiceUnavailableError, UnauthorizedError } from '@ctll/protocol';
import type { NextFunction, Request, Response } from 'express';

export interface Caller {
  userId: string;
}

export interface AuthenticatorOptions {
  issuer: string;
  audience: string;
  jwksUri: string;
  /** Accept `?token=` as well as the Authorization header (browsers cannot set headers on WebSockets). */
  queryTokenPaths: readonly string[];
  /** A refused token, with the request that carried it (the audit counts refusals per client address). */
  onFailure?: (reason: string, req: IncomingMessage) => void;
}

const MAX_SUBJECT_LENGTH = 256;

/**
 * Tokens already verified, so a client sending the same token with every request pays for one
 * RS256 verification (a KeyObject built from PEM plus an RSA check, most of api-backend's CPU per
 * small request) instead of one per request. An entry lives until the token expires or for
 * VERIFIED_TTL_MS, whichever comes first: a signing key removed from the JWKS stops being
 * accepted within that time, well inside jwks-rsa's own 10-minute key cache.
 */
const VERIFIED_TTL_MS = 60_000;
const MAX_VERIFIED = 4096;

export class Authenticator {
  private readonly verify: (req: JwtRequest, res: Response, next: NextFunction) => Promise<void>;
  private readonly verified = new Map<string, { userId: string; until: number }>();

  constructor(private readonly options: AuthenticatorOptions) {
    this.verify = expressjwt({
      secret: jwksRsa.expressJwtSecret({
        jwksUri: options.jwksUri,
        cache: true,
        cacheMaxAge: 10 * 60 * 1000,
        rateLimit: true,
        jwksRequestsPerMinute: 10,
        timeout: 5000,
      }) as never,
      algorithms: ['RS256'],
      issuer: options.issuer,
      audience: options.audience,
      getToken: (req) => tokenOf(req, options.queryTokenPaths),
    }) as never;
  }

  /** Verifies the request's token; resolves to the caller or rejects with a RelayError. */
  authenticate(req: IncomingMessage): Promise<Caller> {
    const request = req as JwtRequest;
    const token = tokenOf(req, this.options.queryTokenPaths);
    const known = token === undefined ? undefined : this.verified.get(token);
    if (known && known.until > Date.now()) return Promise.resolve({ userId: known.userId });
    if (known) this.verified.delete(token!);
    return new Promise((resolve, reject) => {
      this.verify(request, undefined as unknown as Response, (error?: unknown) => {
        if (error) return reject(this.translate(error, req));
        const sub = request.auth?.sub;
        if (typeof sub !== 'string' || sub.length === 0 || sub.length > MAX_SUBJECT_LENGTH) {
          this.options.onFailure?.('no_subject', req);
          return reject(new UnauthorizedError('the token has no usable subject (sub) claim'));
        }
        if (token !== undefined) this.remember(token, sub, request.auth?.exp);
        resolve({ userId: sub });
      }).catch((error: unknown) => reject(this.translate(error, req)));
    });
  }

  /** Express middleware: sets `res.locals.caller`. */
  middleware() {
    return (req: Request, res: Response, next: NextFunction): void => {
      this.authenticate(req).then(
        (caller) => {
          res.locals.caller = caller;
          next();
        },
        (error: unknown) => next(error),
      );
    };
  }

  private remember(token: string, userId: string, exp: number | undefined): void {
    const until = Math.min(Date.now() + VERIFIED_TTL_MS, typeof exp === 'number' ? exp * 1000 : Infinity);
    // A Map iterates in insertion order: when full, forget the oldest entry.
    if (this.verified.size >= MAX_VERIFIED) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(token, { userId, until });
  }

  private translate(error: unknown, req: IncomingMessage): Error {
    if (error instanceof UnauthorizedError) return error;
    if (error instanceof JwtUnauthorizedError) {
      this.options.onFailure?.(error.code, req);
      const detail = error.inner?.message ?? error.message;
      return new UnauthorizedError(error.code === 'credentials_required' ? 'a bearer token is required' : `invalid token: ${detail}`);
    }
    // The identity provider's JWKS could not be fetched: our problem, not the caller's.
    this.options.onFailure?.('jwks_unavailable', req);
    return new ServiceUnavailableError('cannot verify tokens right now: the signing keys are unreachable', 'auth_unavailable', {
      cause: error,
    });
  }
}

function tokenOf(req: IncomingMessage, queryTokenPaths: readonly string[]): string | undefined {
  const header = req.headers.authorization;
  if (header) {
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    return match ? match[1] : undefined;
  }
  const url = new URL(req.url ?? '/', 'http://relay.invalid');
  if (queryTokenPaths.includes(url.pathname)) return url.searchParams.get('token') ?? undefined;
  return undefined;
}
