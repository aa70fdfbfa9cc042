/**
 * What a good signature does not prove on its own (the token expires, within the allowed lifetime,
 * and names a user), and the one translation of every way a token is refused into a reason from a
 * bounded set. The reason goes to metrics and the security audit, the detail only to the log: a
 * caller learns nothing about the expected issuer, audience or keys.
 */
import jwt, { type JwtPayload } from 'jsonwebtoken';
import { UnauthorizedError as ExpressJwtError } from 'express-jwt';
import { UnknownKeyError } from './key-store';

/** Longest user id (`sub`) accepted. */
const MAX_SUBJECT_LENGTH = 256;

export type RefusalReason =
  | 'credentials_required'
  | 'invalid_token'
  | 'unknown_key'
  | 'bad_signature'
  | 'wrong_algorithm'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'token_expired'
  | 'not_yet_valid'
  | 'no_expiry'
  | 'lifetime_too_long'
  | 'no_subject';

/** A refused token: `reason` is one of a bounded set, `message` is detail for the log only. */
export class TokenRefused extends Error {
  constructor(
    readonly reason: RefusalReason,
    detail: string,
  ) {
    super(detail);
  }
}

/** What the caller is told: never the library's words, which name the expected issuer and audience. */
export function publicMessage(reason: RefusalReason): string {
  return reason === 'credentials_required' ? 'a bearer token is required' : 'invalid or expired token';
}

/** Checks the claims of a token whose signature, issuer, audience and times are verified; returns its subject. */
export function checkClaims(payload: JwtPayload | string | undefined, maxLifetimeS: number, nowS = Date.now() / 1000): string {
  if (typeof payload !== 'object' || payload === null) throw new TokenRefused('invalid_token', 'the payload is not a JSON object');
  const { exp, iat, sub } = payload;
  // jsonwebtoken accepts a token without exp forever; we do not.
  if (typeof exp !== 'number') throw new TokenRefused('no_expiry', 'the token has no exp claim');
  // From iat when it is given (and not in the future), else from now: a token that would still be
  // valid longer than the maximum is refused either way.
  const from = typeof iat === 'number' ? Math.min(iat, nowS) : nowS;
  if (exp - from > maxLifetimeS) {
    throw new TokenRefused('lifetime_too_long', `the token lives ${Math.round(exp - from)} s, over JWT_MAX_LIFETIME_S=${maxLifetimeS}`);
  }
  if (typeof sub !== 'string' || sub.length === 0 || sub.length > MAX_SUBJECT_LENGTH) {
    throw new TokenRefused('no_subject', 'the token has no usable subject (sub) claim');
  }
  return sub;
}

/** The refusal behind a verification error, or undefined when the error is not about the token. */
export function refusalOf(error: unknown): TokenRefused | undefined {
  if (error instanceof TokenRefused) return error;
  if (error instanceof UnknownKeyError) return new TokenRefused('unknown_key', error.message);
  if (error instanceof ExpressJwtError) {
    // express-jwt wraps jsonwebtoken's error; its only other code here is a missing token.
    if (error.code === 'credentials_required') return new TokenRefused('credentials_required', error.message);
    return (error.inner && refusalOf(error.inner)) || new TokenRefused('invalid_token', error.inner?.message ?? error.message);
  }
  if (error instanceof jwt.TokenExpiredError) return new TokenRefused('token_expired', error.message);
  if (error instanceof jwt.NotBeforeError) return new TokenRefused('not_yet_valid', error.message);
  if (error instanceof jwt.JsonWebTokenError) return new TokenRefused(reasonOfMessage(error.message), error.message);
  return undefined;
}

/** jsonwebtoken tells its failures apart only by message. */
function reasonOfMessage(message: string): RefusalReason {
  if (message === 'invalid signature') return 'bad_signature';
  if (message === 'invalid algorithm' || message === 'jwt signature is required') return 'wrong_algorithm';
  if (message.startsWith('jwt issuer invalid')) return 'wrong_issuer';
  if (message.startsWith('jwt audience invalid')) return 'wrong_audience';
  return 'invalid_token';
}
