/**
 * Tokens already verified, so a client sending the same token with every request pays for one
 * verification instead of one per request (a measured hot-path win). Each entry carries its own
 * deadline, which the Authenticator sets to the earlier of the token's expiry and the end of its
 * signing key's freshness in the KeyStore: a cached token never outlives its key's removal from
 * the JWKS by more than the key cache's max age.
 */
import type { Caller } from './authenticator';

export class VerifiedTokens {
  private readonly entries = new Map<string, { caller: Caller; until: number }>();

  constructor(private readonly maxEntries: number) {}

  get(token: string | undefined): Caller | undefined {
    if (token === undefined) return undefined;
    const entry = this.entries.get(token);
    if (!entry) return undefined;
    if (entry.until > Date.now()) return entry.caller;
    this.entries.delete(token);
    return undefined;
  }

  remember(token: string, caller: Caller, until: number): void {
    if (until <= Date.now()) return;
    // A Map iterates in insertion order: when full, forget the oldest entry.
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(token, { caller, until });
  }
}
