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
  onFailure?: (reason: string) => void;
}

const MAX_SUBJECT_LENGTH = 256;

export class Authenticator {
  private readonly verify: (req: JwtRequest, res: Response, next: NextFunction) => Promise<void>;

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
    return new Promise((resolve, reject) => {
      this.verify(request, undefined as unknown as Response, (error?: unknown) => {
        if (error) return reject(this.translate(error));
        const sub = request.auth?.sub;
        if (typeof sub !== 'string' || sub.length === 0 || sub.length > MAX_SUBJECT_LENGTH) {
          this.options.onFailure?.('no_subject');
          return reject(new UnauthorizedError('the token has no usable subject (sub) claim'));
        }
        resolve({ userId: sub });
      }).catch((error: unknown) => reject(this.translate(error)));
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

  private translate(error: unknown): Error {
    if (error instanceof UnauthorizedError) return error;
    if (error instanceof JwtUnauthorizedError) {
      this.options.onFailure?.(error.code);
      const detail = error.inner?.message ?? error.message;
      return new UnauthorizedError(error.code === 'credentials_required' ? 'a bearer token is required' : `invalid token: ${detail}`);
    }
    // The identity provider's JWKS could not be fetched: our problem, not the caller's.
    this.options.onFailure?.('jwks_unavailable');
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
