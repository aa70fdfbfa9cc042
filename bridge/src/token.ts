/**
 * Reads who a token belongs to and when it expires, for the status line and for timing renewals. The payload is decoded, never verified:
 * the relay verifies every token, and the bridge has no key to do it with anyway.
 */

/** The JWT's `sub` claim, or undefined when the token is not a readable JWT. */
export function tokenSubject(token: string): string | undefined {
  const sub = claims(token)?.sub;
  return typeof sub === 'string' && sub !== '' ? sub : undefined;
}

/** When the JWT expires (its `exp`, in ms since the epoch), or undefined for anything else (a relay key). */
export function tokenExpiry(token: string): number | undefined {
  const exp = claims(token)?.exp;
  return typeof exp === 'number' && Number.isFinite(exp) && exp > 0 ? exp * 1000 : undefined;
}

function claims(token: string): Record<string, unknown> | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    return typeof payload === 'object' && payload !== null ? (payload as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
