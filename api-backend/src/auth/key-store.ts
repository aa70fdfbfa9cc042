/**
 * The identity provider's signing keys, fetched as a whole set from its JWKS (jwks-rsa's
 * JwksClient) and held as ready-made KeyObjects. Both token paths (express-jwt on HTTP routes,
 * jsonwebtoken on the WebSocket upgrade) ask this one store, so one policy decides when the JWKS
 * is fetched:
 *
 * - at most one fetch per `refreshIntervalMs`, whatever the traffic: a flood of tokens naming
 *   made-up key ids (`kid`) costs one fetch per interval and never starves anyone else;
 * - a `kid` the set does not hold triggers a fetch if the interval allows one, else it is refused
 *   at once (UnknownKeyError, a 401), never queued behind a limiter;
 * - a set older than `maxAgeMs` is fetched again before use, so a key removed from the JWKS stops
 *   being accepted within `maxAgeMs` (plus the fetch's own time);
 * - while the JWKS cannot be fetched, the keys last fetched stay in use (an identity provider's
 *   outage does not log everyone out); only a `kid` the store has never seen then fails with
 *   KeysUnavailableError (a 503).
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { JwksClient } from 'jwks-rsa';

export interface KeyStoreOptions {
  jwksUri: string;
  /** Least time between two JWKS fetches. */
  refreshIntervalMs: number;
  /** A fetched set is used this long before it must be fetched again; at least refreshIntervalMs. */
  maxAgeMs: number;
  /** One fetch's timeout. */
  timeoutMs?: number;
}

/** The token names a key the JWKS does not hold (checked just now or within the refresh interval). */
export class UnknownKeyError extends Error {}

/** The JWKS cannot be fetched and the token's key was never seen. */
export class KeysUnavailableError extends Error {}

interface Key {
  kid?: string;
  key: KeyObject;
}

export class KeyStore {
  private readonly client: JwksClient;
  private keys: Key[] = [];
  /** When the set in `keys` was fetched. */
  private fetchedAt = -Infinity;
  /** When the last fetch began, whether it worked or not: the interval counts from here. */
  private attemptedAt = -Infinity;
  /** Why the last fetch failed; undefined once one worked. */
  private lastError: unknown;
  private refreshing: Promise<void> | undefined;

  constructor(private readonly options: KeyStoreOptions) {
    // jwks-rsa's own cache and rate limiter are off: their limiter is shared by every kid, so
    // made-up kids used it up and locked out real ones. This store does both jobs instead.
    this.client = new JwksClient({ jwksUri: options.jwksUri, cache: false, rateLimit: false, timeout: options.timeoutMs ?? 5000 });
  }

  /** The key for `kid` (a token without `kid` gets the only key of a one-key set). */
  async resolve(kid: string | undefined): Promise<KeyObject> {
    // The header is the caller's JSON: a kid that is not a string names no key.
    if (kid !== undefined && typeof kid !== 'string') throw new UnknownKeyError('the kid is not a string');
    const stale = Date.now() - this.fetchedAt >= this.options.maxAgeMs;
    if ((stale || !this.lookup(kid)) && this.mayFetch()) await this.refresh();
    const key = this.lookup(kid);
    if (key) return key;
    if (this.lastError !== undefined) {
      throw new KeysUnavailableError(`the JWKS could not be fetched: ${(this.lastError as Error)?.message ?? String(this.lastError)}`, {
        cause: this.lastError,
      });
    }
    // The kid is the caller's text: only a bounded piece of it reaches the log.
    throw new UnknownKeyError(`no key ${JSON.stringify(kid?.slice(0, 64) ?? null)} in the JWKS`);
  }

  /**
   * Until when a token verified with `kid`'s key may be trusted without asking again: the end of
   * the current set's max age, or 0 when that key is not in the current set.
   */
  freshUntil(kid: string | undefined): number {
    return this.lookup(kid) ? this.fetchedAt + this.options.maxAgeMs : 0;
  }

  private lookup(kid: string | undefined): KeyObject | undefined {
    if (kid === undefined) return this.keys.length === 1 ? this.keys[0].key : undefined;
    return this.keys.find((entry) => entry.kid === kid)?.key;
  }

  /** A fetch under way is joined; a new one starts only once the interval since the last has passed. */
  private mayFetch(): boolean {
    return this.refreshing !== undefined || Date.now() - this.attemptedAt >= this.options.refreshIntervalMs;
  }

  private refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      this.attemptedAt = Date.now();
      try {
        const signingKeys = await this.client.getSigningKeys();
        const keys: Key[] = [];
        for (const signingKey of signingKeys) {
          const key = createPublicKey(signingKey.getPublicKey());
          // Only RSA keys can check an RS256 signature; anything else in the set is ignored.
          if (key.asymmetricKeyType === 'rsa') keys.push({ kid: signingKey.kid || undefined, key });
        }
        this.keys = keys;
        this.fetchedAt = Date.now();
        this.lastError = undefined;
      } catch (error) {
        this.lastError = error ?? new Error('JWKS fetch failed');
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }
}
