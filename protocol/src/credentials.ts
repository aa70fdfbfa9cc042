/**
 * A live tunnel outlives its first token: how the bridge renews its credential and how the relay
 * ends a tunnel whose credential ran out.
 *
 * api-backend verifies the credential that opens a link (the WebSocket upgrade, each long-poll
 * request) and tells the user's proxy when it expires (CREDENTIAL_EXPIRES_HEADER; absent: never,
 * as for a relay key without expiry). On a WebSocket the bridge sends `{type: 'token', token}`
 * before that; the proxy has api-backend verify it (RENEWAL_PATH) and moves the link's deadline.
 * A link still past its deadline after the grace (TOKEN_EXPIRY_GRACE_MS) is closed with
 * TOKEN_EXPIRED_CLOSE, so a user whose sign-in was revoked is cut off.
 */

import { z } from 'zod';

/** api-backend to proxy: when the credential that opened or last renewed a link expires (ms since the epoch). */
export const CREDENTIAL_EXPIRES_HEADER = 'x-ctll-credential-expires';

/**
 * WebSocket close for a tunnel whose credential expired and was not renewed (4000-4999 is for
 * applications; 4401 echoes HTTP 401). The bridge reconnects if it has a fresh token.
 */
export const TOKEN_EXPIRED_CLOSE = Object.freeze({ code: 4401, reason: 'token expired; run `ctll-bridge login`' });

/** Codes of the `error` message a refused `token` message is answered with; the link keeps its old deadline. */
export const RenewalErrorCode = {
  /** Not a valid credential for this relay (bad signature, expired, wrong audience ...). */
  Invalid: 'token_invalid',
  /** A valid credential, but for another user than the tunnel's owner. */
  WrongUser: 'token_wrong_user',
  /** The relay could not check it now (api-backend unreachable, a renewal already being checked). */
  Unavailable: 'token_unavailable',
} as const;

/**
 * `POST <api-backend>${RENEWAL_PATH}/<ownerHash>`: a user's proxy asks api-backend to verify a
 * renewal token, proving itself with its own secret (x-ctll-proxy-secret). The body is
 * RenewalRequest; the answer (200) is RenewalVerdict.
 */
export const RENEWAL_PATH = '/api/renewals';

export interface RenewalRequest {
  token: string;
}

export type RenewalVerdict =
  | { accepted: true; /** ms since the epoch; null: the credential does not expire. */ expiresAt: number | null }
  | { accepted: false; code: (typeof RenewalErrorCode)[keyof typeof RenewalErrorCode]; message: string };

/** Reads a CREDENTIAL_EXPIRES_HEADER value: a time in ms, or undefined (absent or unreadable: never). */
export function parseCredentialExpiry(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string' || !/^\d{1,16}$/.test(value)) return undefined;
  return Number(value);
}

/**
 * api-backend to proxy: the id of the relay key that opened or carries a link (absent: a token).
 * An id, never the key: it lets the proxy close the links of a key once it is revoked.
 */
export const CREDENTIAL_KEY_HEADER = 'x-ctll-credential-key';

/**
 * `POST <proxy>${KEY_REVOKED_PATH}` with KeyRevokedRequest: api-backend revoked a relay key of
 * this proxy's owner. The proxy closes every link the key opened (KEY_REVOKED_CLOSE) and refuses
 * the key's id on new links for a while, so an api-backend still trusting its cached copy of the
 * key cannot open a fresh tunnel with it. Answered with KeyRevokedAnswer.
 */
export const KEY_REVOKED_PATH = '/credentials/revoked';

export const keyRevokedRequestSchema = z.object({ keyId: z.string().regex(/^[0-9a-f-]{36}$/i) });
export type KeyRevokedRequest = z.infer<typeof keyRevokedRequestSchema>;
export const keyRevokedAnswerSchema = z.object({ closed: z.number().int().nonnegative() });
export type KeyRevokedAnswer = z.infer<typeof keyRevokedAnswerSchema>;

/**
 * WebSocket close (and long-poll answer) for a link whose relay key was revoked: 4401 like an
 * expired token, so a bridge treats it as a refused credential (its reconnect is refused and it
 * exits 77 after --auth-fail-exit refusals).
 */
export const KEY_REVOKED_CLOSE = Object.freeze({ code: 4401, reason: 'relay key revoked; make a new `bridge` key or run `ctll-bridge login`' });
