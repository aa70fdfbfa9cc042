/**
 * One verifier for every way a caller proves who they are, with one policy: RS256 only, issuer and
 * audience checked, `exp` required and within the maximum lifetime, `sub` required, keys from the
 * KeyStore (the identity provider's JWKS). HTTP routes run express-jwt; the tunnel's WebSocket
 * upgrade, which has no Express response, runs jsonwebtoken on the raw request before any
 * handshake is answered, so a bad token never gets a socket. Both share the key store, the claim
 * checks, the cache of verified tokens and the translation of refusals into answers. A relay key
 * (`Bearer ctll_...`) takes the other branch on both paths: relay-keys.ts resolves it to its owner,
 * key-scopes.ts decides whether its scope allows the path.
 */
import type { IncomingMessage } from 'node:http';
import { expressjwt, type Request as JwtRequest } from 'express-jwt';
import jwt, { type Algorithm, type JwtPayload } from 'jsonwebtoken';
import { isRelayKey, KeyScopeError, RelayError, ServiceUnavailableError, UnauthorizedError, type RelayKeyScope } from '@ctll/protocol';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Logger } from '../logger';
import { KeysUnavailableError, KeyStore } from './key-store';
import { checkClaims, publicMessage, refusalOf, TokenRefused } from './token-checks';
import { VerifiedTokens } from './verified-tokens';
import { checkKeyScope } from './key-scopes';
import { RelayKeyRefused, type RelayKeys } from './relay-keys';
import { holdsOperatorClaim, type OperatorClaim } from './operator-claim';

export interface Caller {
  userId: string;
  /** Set when the caller presented a relay key instead of a token: which one, and its scope. */
  key?: { id: string; scope: RelayKeyScope };
  /**
   * When the credential expires (ms since the epoch); undefined: never (a relay key without an
   * expiry date). A desktop link is closed once this has passed unrenewed (TOKEN_EXPIRY_GRACE_MS).
   */
  expiresAt?: number;
  /** The token carries ADMIN_CLAIM (operator-claim.ts): the operator's routes are open to it. Never set for a relay key. */
  operator?: boolean;
}

export interface AuthenticatorOptions {
  issuer: string;
  audience: string;
  jwksUri: string;
  /** Least time between two JWKS fetches (an unknown `kid` waits for the next one). */
  jwksRefreshIntervalMs: number;
  /** Fetched keys are used this long; a key removed from the JWKS stops working within it. */
  jwksCacheMaxAgeMs: number;
  /** Longest token lifetime accepted, in seconds. */
  maxLifetimeS: number;
  /** Accept `?token=` as well as the Authorization header (browsers cannot set headers on WebSockets). */
  queryTokenPaths: readonly string[];
  logger?: Logger;
  /** Relay keys (`Bearer ctll_...`); unset: only tokens are accepted. */
  relayKeys?: RelayKeys;
  /** Called for every refused token, with a bounded reason (metrics label, security audit) and the request that carried it (the audit counts refusals per client address). */
  onFailure?: (reason: string, req: IncomingMessage) => void;
  /** ADMIN_CLAIM: the claim that makes a token's bearer an operator; unset: nobody is one. */
  operatorClaim?: OperatorClaim;
}

const ALGORITHMS: Algorithm[] = ['RS256'];
const MAX_VERIFIED = 4096;

export class Authenticator {
  private readonly keys: KeyStore;
  private readonly verified = new VerifiedTokens(MAX_VERIFIED);
  private readonly verifyHttp: RequestHandler;

  constructor(private readonly options: AuthenticatorOptions) {
    this.keys = new KeyStore({
      jwksUri: options.jwksUri,
      refreshIntervalMs: options.jwksRefreshIntervalMs,
      maxAgeMs: options.jwksCacheMaxAgeMs,
    });
    this.verifyHttp = expressjwt({
      secret: (_req, token) => {
        if (!token) throw new TokenRefused('invalid_token', 'not a JWT');
        return this.keys.resolve(token.header.kid);
      },
      algorithms: ALGORITHMS,
      issuer: options.issuer,
      audience: options.audience,
      getToken: (req) => tokenOf(req, options.queryTokenPaths),
    });
  }

  /** Express middleware: verifies the bearer token and sets `res.locals.caller`. */
  middleware(): RequestHandler {
    return (req: Request, res: Response, next: NextFunction): void => {
      const token = tokenOf(req, this.options.queryTokenPaths);
      if (token !== undefined && isRelayKey(token)) {
        this.acceptKey(token, req).then(
          (caller) => {
            res.locals.caller = caller;
            next();
          },
          (error: unknown) => {
            // Reported through onFailure already: the edge's security events must not count this 403 again.
            if (error instanceof KeyScopeError) res.locals.authReported = true;
            next(error);
          },
        );
        return;
      }
      const known = this.verified.get(token);
      if (known !== undefined) {
        res.locals.caller = known satisfies Caller;
        return next();
      }
      this.verifyHttp(req, res, (error?: unknown) => {
        try {
          if (error) throw error;
          res.locals.caller = this.accept(token!, (req as JwtRequest).auth);
          next();
        } catch (refused) {
          next(this.refuse(refused, req));
        }
      });
    };
  }

  /** Verifies a raw request's token (the WebSocket upgrade); resolves to the caller or rejects with a RelayError. */
  async authenticate(req: IncomingMessage): Promise<Caller> {
    return this.verify(tokenOf(req, this.options.queryTokenPaths), req);
  }

  /**
   * Verifies a token given apart from its request (a tunnel's renewal, which its proxy passes
   * on); `req` is what carried it, for the refusal's audit.
   */
  async verify(token: string | undefined, req: IncomingMessage): Promise<Caller> {
    if (token !== undefined && isRelayKey(token)) return this.acceptKey(token, req);
    const known = this.verified.get(token);
    if (known !== undefined) return known;
    try {
      if (token === undefined) throw new TokenRefused('credentials_required', 'no bearer token');
      const decoded = jwt.decode(token, { complete: true });
      if (!decoded) throw new TokenRefused('invalid_token', 'not a JWT');
      const key = await this.keys.resolve(decoded.header.kid);
      const payload = jwt.verify(token, key, { algorithms: ALGORITHMS, issuer: this.options.issuer, audience: this.options.audience });
      return this.accept(token, payload);
    } catch (error) {
      throw this.refuse(error, req);
    }
  }

  /** The claim checks both paths share after the signature is verified; remembers the token. */
  private accept(token: string, payload: JwtPayload | string | undefined): Caller {
    const userId = checkClaims(payload, this.options.maxLifetimeS);
    const exp = (payload as JwtPayload).exp! * 1000;
    const kid = jwt.decode(token, { complete: true })?.header.kid;
    const caller: Caller = { userId, expiresAt: exp };
    if (holdsOperatorClaim(payload as JwtPayload, this.options.operatorClaim)) caller.operator = true;
    this.verified.remember(token, caller, Math.min(exp, this.keys.freshUntil(kid)));
    return caller;
  }

  /** A relay key instead of a token: its owner is the caller, within the key's scope (key-scopes.ts). */
  private async acceptKey(key: string, req: IncomingMessage): Promise<Caller> {
    try {
      if (!this.options.relayKeys) throw new RelayKeyRefused('relay_key_unknown');
      const verified = await this.options.relayKeys.verify(key);
      // Express strips a mount's path from req.url; originalUrl is the whole of it (a raw upgrade has only url).
      const pathname = ((req as Partial<Request>).originalUrl ?? req.url ?? '/').split('?')[0];
      checkKeyScope(verified.scope, pathname);
      return { userId: verified.userId, key: { id: verified.id, scope: verified.scope }, expiresAt: verified.expiresAt };
    } catch (error) {
      const reason = error instanceof RelayKeyRefused ? error.reason : error instanceof KeyScopeError ? 'key_scope' : undefined;
      if (reason) {
        this.options.logger?.debug('relay key refused', { reason });
        this.options.onFailure?.(reason, req);
      }
      throw error;
    }
  }

  private refuse(error: unknown, req: IncomingMessage): Error {
    if (error instanceof RelayError) return error;
    if (error instanceof KeysUnavailableError) {
      // The identity provider's JWKS could not be fetched: our problem, not the caller's.
      this.options.onFailure?.('jwks_unavailable', req);
      return new ServiceUnavailableError('cannot verify tokens right now: the signing keys are unreachable', 'auth_unavailable', {
        cause: error,
      });
    }
    const refusal = refusalOf(error);
    if (!refusal) return error instanceof Error ? error : new Error(String(error));
    this.options.logger?.debug('token refused', { reason: refusal.reason, detail: refusal.message });
    this.options.onFailure?.(refusal.reason, req);
    return new UnauthorizedError(publicMessage(refusal.reason));
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
