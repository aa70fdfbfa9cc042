/**
 * Which credential may be used where: the one table both token paths (HTTP routes and the tunnel's
 * WebSocket upgrade) ask about a relay key. A user's own token (JWT) may be used everywhere; a key
 * only for its scope's job, and never to make, list or revoke keys, so a leaked key cannot mint
 * more keys or outlive its revocation.
 */
import { KeyScopeError, type RelayKeyScope } from '@ctll/protocol';

/** The scope a path needs of a relay key; undefined: a user's own token only. */
export function keyScopeFor(rawPathname: string): RelayKeyScope | undefined {
  // Express matches routes case-insensitively; so does this table.
  const pathname = rawPathname.toLowerCase();
  // A desktop connecting, by WebSocket or long-poll, and registering its zrok share.
  if (pathname === '/ws/tunnel' || pathname.startsWith('/api/bridge/') || pathname.startsWith('/api/zrok/')) return 'bridge';
  // A script or app calling the user's model through their tunnel.
  if (pathname.startsWith('/api/tunnel/')) return 'call';
  return undefined;
}

/** Throws the catalogue's 403 when a key of `scope` may not be used at `pathname`. */
export function checkKeyScope(scope: RelayKeyScope, pathname: string): void {
  const needed = keyScopeFor(pathname);
  if (needed === scope) return;
  if (needed === undefined) {
    throw new KeyScopeError('relay keys cannot be used here: sign in with your own token (keys only connect a bridge or call your tunnel)');
  }
  throw new KeyScopeError(
    scope === 'call'
      ? 'this is a `call` key: it can call your tunnel but not connect a bridge; make a `bridge` key for that'
      : 'this is a `bridge` key: it can connect a bridge but not call your tunnel; make a `call` key for that',
  );
}
