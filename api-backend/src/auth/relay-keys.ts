/**
 * Relay keys: made, listed and revoked by their user, and checked when presented.
 *
 * A key is `ctll_` and 32 random bytes in base64url (256 bits: guessing needs no rate limit of its
 * own). It is shown once; the table keeps its SHA-256 only. A plain hash is enough, unlike for a
 * password: the key is random and long, so there is nothing to try offline.
 *
 * Checking a key costs one database query, then the answer is kept for at most CACHE_MS, so a busy
 * script costs one query per key every few seconds, not one per request. That bound is also how
 * long a revoked key can still work on another api-backend sharing the database (the one that
 * revoked it forgets it at once): well within the 5 s the README promises.
 *
 * Use is recorded as the key's `last_used_at`, through the audit writer (never on the request's
 * path), at most once per LAST_USED_PRECISION_MS per key and api-backend.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { BadRequestError, NotFoundError, RELAY_KEY_PREFIX, ServiceUnavailableError, TtlCache, UnauthorizedError, type CreatedRelayKey, type RelayKeyScope, type RelayKeyView } from '@ctll/protocol';
import type { Queryable } from '../audit/database';
import { DatabaseUnavailableError } from '../audit/errors';
import { deleteKey, findByHash, insertKey, listKeys, type KeyRecord } from './relay-key-table';

/** How long a checked key is trusted without asking the database again. */
export const CACHE_MS = 3_000;
/** `last_used_at` is kept to about this precision. */
export const LAST_USED_PRECISION_MS = 60_000;
/** Most keys one user may hold. */
export const MAX_KEYS_PER_USER = 100;
const MAX_CACHED = 4096;
const KEY_BYTES = 32;
/** What a well-formed key looks like: anything else is refused without a query. */
const KEY_SHAPE = new RegExp(`^${RELAY_KEY_PREFIX}[A-Za-z0-9_-]{43}$`);

/** A key presented and accepted: whose it is and what it may do. */
export interface VerifiedKey {
  id: string;
  userId: string;
  scope: RelayKeyScope;
  /** When the key stops working (ms since the epoch); a tunnel it opened is closed then. */
  expiresAt?: number;
}

export interface NewKey {
  name: string;
  scope: RelayKeyScope;
  expiresAt?: Date;
}

/** Why a presented key was refused: a bounded set, for metrics and the security audit. */
export type KeyRefusalReason = 'relay_key_unknown' | 'relay_key_expired';

export class RelayKeyRefused extends UnauthorizedError {
  constructor(readonly reason: KeyRefusalReason) {
    super('invalid, revoked or expired relay key');
  }
}

export class RelayKeys {
  /** Checked keys by hash. */
  private readonly cache: TtlCache<string, KeyRecord>;
  private readonly lookups = new Map<string, Promise<KeyRecord | undefined>>();
  /** When this api-backend last reported each key's use, by key id (older reports no longer matter). */
  private readonly reported: TtlCache<string, number>;

  constructor(
    private readonly db: Queryable,
    /** Told of each use worth recording (the audit writes it as the key's last use). */
    private readonly onUsed: (keyId: string, at: Date) => void = () => undefined,
    private readonly now: () => number = Date.now,
  ) {
    this.cache = new TtlCache({ ttlMs: CACHE_MS, maxEntries: MAX_CACHED, now });
    this.reported = new TtlCache({ ttlMs: LAST_USED_PRECISION_MS, maxEntries: MAX_CACHED, now });
  }

  /** The key's owner and scope; rejects with RelayKeyRefused (401) or a 503 when the database cannot answer. */
  async verify(key: string): Promise<VerifiedKey> {
    if (!KEY_SHAPE.test(key)) throw new RelayKeyRefused('relay_key_unknown');
    const hash = hashKey(key);
    const record = this.cache.get(hash) ?? (await this.lookup(hash));
    if (!record) throw new RelayKeyRefused('relay_key_unknown');
    const now = this.now();
    if (record.expiresAt !== undefined && record.expiresAt <= now) throw new RelayKeyRefused('relay_key_expired');
    // The database's last use, or ours if later: a report still waiting in the audit's queue counts.
    const lastUsed = Math.max(record.lastUsedAt ?? -Infinity, this.reported.get(record.id) ?? -Infinity);
    if (now - lastUsed >= LAST_USED_PRECISION_MS) {
      this.reported.set(record.id, now);
      this.onUsed(record.id, new Date(now));
    }
    return { id: record.id, userId: record.userId, scope: record.scope, expiresAt: record.expiresAt };
  }

  async create(userId: string, key: NewKey): Promise<CreatedRelayKey> {
    const secret = `${RELAY_KEY_PREFIX}${randomBytes(KEY_BYTES).toString('base64url')}`;
    const row = { id: randomUUID(), userId, hash: hashKey(secret), name: key.name, scope: key.scope, createdAt: new Date(this.now()), expiresAt: key.expiresAt };
    if (!(await this.query(() => insertKey(this.db, row, MAX_KEYS_PER_USER)))) {
      throw new BadRequestError(`you hold ${MAX_KEYS_PER_USER} relay keys, the most allowed: revoke one first`, 'too_many_keys');
    }
    const view: RelayKeyView = {
      id: row.id,
      name: row.name,
      scope: row.scope,
      createdAt: row.createdAt.toISOString(),
      expiresAt: row.expiresAt?.toISOString() ?? null,
      lastUsedAt: null,
    };
    return { ...view, key: secret, userId };
  }

  list(userId: string): Promise<RelayKeyView[]> {
    return this.query(() => listKeys(this.db, userId));
  }

  /** Revokes the user's key; another user's key, or none, is a 404 alike (no one learns which ids exist). */
  async revoke(userId: string, id: string): Promise<void> {
    const deleted = UUID.test(id) && (await this.query(() => deleteKey(this.db, userId, id)));
    if (!deleted) throw new NotFoundError('you have no relay key with this id');
    // This api-backend stops accepting it at once; the others within CACHE_MS.
    for (const [hash, record] of this.cache) if (record.id === id) this.cache.delete(hash);
  }

  /** One query per key at a time, however many requests present it at once. */
  private lookup(hash: string): Promise<KeyRecord | undefined> {
    let pending = this.lookups.get(hash);
    if (!pending) {
      const startedAt = this.now();
      pending = this.query(() => findByHash(this.db, hash))
        .then((record) => {
          // From when the query began: a revocation committed meanwhile is seen within CACHE_MS.
          if (record) this.cache.set(hash, record, startedAt + CACHE_MS);
          return record;
        })
        .finally(() => this.lookups.delete(hash));
      this.lookups.set(hash, pending);
    }
    return pending;
  }

  /** A database that cannot answer is a 503 (its own words, which name hosts, go to the log only). */
  private async query<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (!(error instanceof DatabaseUnavailableError)) throw error;
      throw new ServiceUnavailableError(`relay keys: ${error.message}`, 'auth_unavailable', {
        cause: error,
        publicMessage: 'cannot check relay keys right now; try again later',
      });
    }
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}
