/**
 * Who is signed in, held in memory only: a reload or a closed tab forgets the token (the identity
 * provider's own session makes signing in again one redirect). Nothing here touches localStorage,
 * where any script on the origin could read a token for as long as it lives.
 */
export interface Session {
  token: string;
  userId: string;
  /** Epoch milliseconds, or null when the token says no expiry. */
  expiresAt: number | null;
  mode: 'dev' | 'oidc';
}

type Listener = (session: Session | null) => void;

export class SessionStore {
  private current: Session | null = null;
  private readonly listeners = new Set<Listener>();

  get(): Session | null {
    return this.current;
  }

  set(session: Session | null): void {
    this.current = session;
    for (const listener of this.listeners) listener(session);
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/**
 * The user id the relay will see (the token's `sub`) and its expiry, read from the JWT's payload.
 * Only for display and for building `/api/tunnel/<user>` paths: the relay verifies the signature.
 */
export function readToken(token: string): { userId: string; expiresAt: number | null } {
  const payload = token.split('.')[1];
  if (!payload) throw new Error('not a JSON Web Token');
  const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(payload.length / 4) * 4, '='));
  const claims = JSON.parse(json) as { sub?: unknown; exp?: unknown };
  if (typeof claims.sub !== 'string' || claims.sub === '') throw new Error('the token names no user (sub)');
  return { userId: claims.sub, expiresAt: typeof claims.exp === 'number' ? claims.exp * 1000 : null };
}
