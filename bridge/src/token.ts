/**
 * Reads who a token belongs to, for the status line only. The payload is decoded, never verified:
 * the relay verifies every token, and the bridge has no key to do it with anyway.
 */

/** The JWT's `sub` claim, or undefined when the token is not a readable JWT. */
export function tokenSubject(token: string): string | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    if (typeof payload !== 'object' || payload === null) return undefined;
    const sub = (payload as Record<string, unknown>).sub;
    return typeof sub === 'string' && sub !== '' ? sub : undefined;
  } catch {
    return undefined;
  }
}
