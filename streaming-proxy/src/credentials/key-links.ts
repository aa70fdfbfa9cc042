/**
 * Which desktop links a relay key opened, so revoking the key ends them. api-backend names the key
 * by its id (CREDENTIAL_KEY_HEADER) on every link it hands over; when the owner revokes a key, the
 * api-backend that did it tells this proxy (KEY_REVOKED_PATH), whichever replica that is: every
 * link of the owner ends here, so one call reaches them all.
 *
 * A revoked id is also remembered for REMEMBER_REVOKED_MS: another api-backend may still trust
 * its cached copy of the key for a few seconds (relay-keys.ts CACHE_MS), and the bridge whose
 * tunnel was just closed reconnects at once; that new link is refused here instead of living on.
 */
import { KEY_REVOKED_CLOSE, TtlCache } from '@ctll/protocol';
import type { DesktopLink } from '../tunnel/desktop-link';

/** Well past how long any api-backend trusts a cached key after its revocation. */
export const REMEMBER_REVOKED_MS = 60_000;
const MAX_REVOKED = 1024;

export class KeyLinks {
  private readonly links = new Map<DesktopLink, string>();
  /** Revoked key ids, each for REMEMBER_REVOKED_MS. */
  private readonly revoked: TtlCache<string, true>;

  constructor(now: () => number = Date.now) {
    this.revoked = new TtlCache({ ttlMs: REMEMBER_REVOKED_MS, maxEntries: MAX_REVOKED, now });
  }

  /** `link` was opened with relay key `keyId`; undefined: with a token, nothing to track. */
  track(link: DesktopLink, keyId: string | undefined): void {
    this.prune();
    if (keyId !== undefined) this.links.set(link, keyId);
  }

  /** Was the key `keyId` revoked lately? A link presenting it is refused. */
  isRevoked(keyId: string | undefined): boolean {
    return keyId !== undefined && this.revoked.has(keyId);
  }

  /** Closes every open link of the key `keyId` (KEY_REVOKED_CLOSE) and refuses the id from now on; returns how many were closed. */
  revoke(keyId: string): number {
    this.revoked.set(keyId, true);
    let closed = 0;
    for (const [link, id] of this.links) {
      if (id !== keyId) continue;
      this.links.delete(link);
      if (link.closed) continue;
      link.close(KEY_REVOKED_CLOSE.code, KEY_REVOKED_CLOSE.reason);
      closed += 1;
    }
    return closed;
  }

  /** Forgets links that closed on their own; a proxy holds a handful, so a walk costs nothing. */
  private prune(): void {
    for (const link of this.links.keys()) if (link.closed) this.links.delete(link);
  }
}
