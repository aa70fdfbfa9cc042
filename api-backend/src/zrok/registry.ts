/**
 * The zrok share registry: which public share URLs each user's desktop has offered.
 *
 * A share lives as long as its desktop keeps heartbeating: each heartbeat pushes its expiry
 * ZROK_SHARE_TTL_MS ahead, reads treat an expired share as gone, and a sweep deletes it. Shares
 * are owned by the user's hash (the same one that names the user's proxy), so another user's
 * tunnel id is indistinguishable from an unknown one: both are 404.
 *
 * The shares live in the audit's database (table zrok_shares), so every api-backend replica knows
 * every share: a desktop may register through one replica and its proxy discover through another.
 * Expiry is judged by the replica's own clock (`now`), like token lifetimes; replicas are expected
 * to keep NTP time. A register runs in one transaction under a per-owner advisory lock, so two
 * replicas registering for one owner at once cannot both pass the per-user limit. A database that
 * is away answers 503 (DatabaseUnavailableError): a bridge retries, and its heartbeats re-register.
 *
 * Share URLs and tokens are never logged (a zrok URL embeds its share token): lines carry the
 * owner's hash and the tunnel id only.
 */
import { randomBytes } from 'node:crypto';
import { BadRequestError, NotFoundError } from '@ctll/protocol';
import type { Logger } from '../logger';
import { toDate, type Database, type Queryable, type SqlParam } from '../audit/database';
import { ownerKey } from '../proxy/replica-lock';

/**
 * The ids register() hands out. Anything else cannot name a share, so it is answered "no such
 * share" without asking the database, which refuses some bytes (NUL) with an error, not "no row".
 */
export const SHARE_ID_PATTERN = /^zt[0-9a-f]{24}$/;

export interface ShareInfo {
  publicUrl: string;
  localUrl?: string;
  shareToken?: string;
}

export interface ShareRecord extends ShareInfo {
  tunnelId: string;
  ownerHash: string;
  registeredAt: number;
  lastHeartbeatAt: number;
  expiresAt: number;
}

export interface RegistryOptions {
  ttlMs: number;
  maxSharesPerUser?: number;
  sweepIntervalMs?: number;
  now?: () => number;
}

export const DEFAULT_REGISTRY_OPTIONS = Object.freeze({
  ttlMs: 90_000,
  // A desktop offers one share in practice; a few more cover a laptop and a PC, or a restart overlap.
  maxSharesPerUser: 4,
  // Reads already ignore expired shares; the sweep only deletes their rows.
  sweepIntervalMs: 30_000,
  now: Date.now,
});

/** First half of the two-part advisory lock key of a register ("zrok" in ASCII); the owner gives the second. */
const REGISTER_LOCK_CLASS = 0x7a726f6b;

interface ShareRow {
  tunnel_id: string;
  owner_hash: string;
  public_url: string;
  local_url: string | null;
  share_token: string | null;
  registered_at: unknown;
  last_heartbeat_at: unknown;
  expires_at: unknown;
}

export class ShareRegistry {
  private readonly options: Required<RegistryOptions>;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Database,
    options: RegistryOptions,
    private readonly logger: Logger,
  ) {
    this.options = { ...DEFAULT_REGISTRY_OPTIONS, ...options };
  }

  /** How often a desktop should heartbeat: three chances before its share expires. */
  get heartbeatIntervalMs(): number {
    return Math.floor(this.options.ttlMs / 3);
  }

  start(): this {
    this.timer ??= setInterval(() => {
      this.sweep().catch((error: Error) => this.logger.warn('zrok share sweep failed; the next one retries', { error: error.message }));
    }, Math.min(this.options.sweepIntervalMs, this.options.ttlMs)).unref();
    return this;
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Registers a share; the same URL again from the same owner refreshes it and keeps its id. */
  register(ownerHash: string, info: ShareInfo): Promise<{ record: ShareRecord; created: boolean }> {
    return this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1, $2)', [REGISTER_LOCK_CLASS, ownerKey(ownerHash)]);
      const now = this.options.now();
      const expiresAt = now + this.options.ttlMs;
      // Expired shares first: they neither count against the limit nor keep their URL's old id.
      await this.deleteExpired(tx, now, 'AND owner_hash = $2', [ownerHash]);
      const refreshed = await tx.query<ShareRow>(
        `UPDATE zrok_shares SET local_url = $3, share_token = $4, last_heartbeat_at = $5, expires_at = $6
          WHERE owner_hash = $1 AND public_url = $2 RETURNING *`,
        [ownerHash, info.publicUrl, info.localUrl ?? null, info.shareToken ?? null, iso(now), iso(expiresAt)],
      );
      if (refreshed.rows.length > 0) return { record: fromRow(refreshed.rows[0]), created: false };
      const { rows } = await tx.query<{ count: string | number }>('SELECT count(*) AS count FROM zrok_shares WHERE owner_hash = $1', [ownerHash]);
      if (Number(rows[0].count) >= this.options.maxSharesPerUser) {
        throw new BadRequestError(`at most ${this.options.maxSharesPerUser} shares per user: unregister one first`, 'too_many_shares');
      }
      const tunnelId = `zt${randomBytes(12).toString('hex')}`;
      const inserted = await tx.query<ShareRow>(
        `INSERT INTO zrok_shares (tunnel_id, owner_hash, public_url, local_url, share_token, registered_at, last_heartbeat_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7) RETURNING *`,
        [tunnelId, ownerHash, info.publicUrl, info.localUrl ?? null, info.shareToken ?? null, iso(now), iso(expiresAt)],
      );
      this.logger.info('zrok share registered', { owner: ownerHash, tunnel: tunnelId });
      return { record: fromRow(inserted.rows[0]), created: true };
    });
  }

  async heartbeat(ownerHash: string, tunnelId: string): Promise<ShareRecord> {
    if (!SHARE_ID_PATTERN.test(tunnelId)) return this.found([]);
    const now = this.options.now();
    const { rows } = await this.db.query<ShareRow>(
      `UPDATE zrok_shares SET last_heartbeat_at = $3, expires_at = $4
        WHERE owner_hash = $1 AND tunnel_id = $2 AND expires_at > $3 RETURNING *`,
      [ownerHash, tunnelId, iso(now), iso(now + this.options.ttlMs)],
    );
    return this.found(rows);
  }

  async unregister(ownerHash: string, tunnelId: string): Promise<ShareRecord> {
    if (!SHARE_ID_PATTERN.test(tunnelId)) return this.found([]);
    const { rows } = await this.db.query<ShareRow>(
      'DELETE FROM zrok_shares WHERE owner_hash = $1 AND tunnel_id = $2 AND expires_at > $3 RETURNING *',
      [ownerHash, tunnelId, iso(this.options.now())],
    );
    const record = this.found(rows);
    this.logger.info('zrok share unregistered', { owner: ownerHash, tunnel: tunnelId });
    return record;
  }

  /** The owner's live share, or a 404 for unknown, expired and other users' ids alike. */
  async get(ownerHash: string, tunnelId: string): Promise<ShareRecord> {
    if (!SHARE_ID_PATTERN.test(tunnelId)) return this.found([]);
    const { rows } = await this.db.query<ShareRow>('SELECT * FROM zrok_shares WHERE owner_hash = $1 AND tunnel_id = $2 AND expires_at > $3', [
      ownerHash,
      tunnelId,
      iso(this.options.now()),
    ]);
    return this.found(rows);
  }

  /** The owner's live shares, the most recently heard from first. */
  async list(ownerHash: string): Promise<ShareRecord[]> {
    const { rows } = await this.db.query<ShareRow>(
      'SELECT * FROM zrok_shares WHERE owner_hash = $1 AND expires_at > $2 ORDER BY last_heartbeat_at DESC, tunnel_id',
      [ownerHash, iso(this.options.now())],
    );
    return rows.map(fromRow);
  }

  /** Deletes every expired share; returns how many. Replicas may sweep at once: each row goes (and is logged) once. */
  sweep(): Promise<number> {
    return this.deleteExpired(this.db, this.options.now());
  }

  private async deleteExpired(on: Queryable, now: number, where = '', params: readonly SqlParam[] = []): Promise<number> {
    const { rows } = await on.query<{ owner_hash: string; tunnel_id: string }>(
      `DELETE FROM zrok_shares WHERE expires_at <= $1 ${where} RETURNING owner_hash, tunnel_id`,
      [iso(now), ...params],
    );
    for (const row of rows) this.logger.info('zrok share expired: no heartbeat', { owner: row.owner_hash, tunnel: row.tunnel_id });
    return rows.length;
  }

  private found(rows: ShareRow[]): ShareRecord {
    if (rows.length === 0) throw new NotFoundError('no such share: it expired or was never registered (register it again)');
    return fromRow(rows[0]);
  }
}

function fromRow(row: ShareRow): ShareRecord {
  return {
    tunnelId: row.tunnel_id,
    ownerHash: row.owner_hash,
    publicUrl: row.public_url,
    ...(row.local_url === null ? {} : { localUrl: row.local_url }),
    ...(row.share_token === null ? {} : { shareToken: row.share_token }),
    registeredAt: toDate(row.registered_at)!.getTime(),
    lastHeartbeatAt: toDate(row.last_heartbeat_at)!.getTime(),
    expiresAt: toDate(row.expires_at)!.getTime(),
  };
}

const iso = (ms: number): string => new Date(ms).toISOString();
