/**
 * The `relay_keys` table (postgres/migrations/0004_relay_keys.sql), on whichever database the audit
 * opened (node-postgres or PGlite): the only SQL about relay keys. Keys are found by the SHA-256 of
 * the key; a user reads and deletes only rows whose `user_id` is theirs. (A key's last use is
 * written by the audit writer, audit/record-sql.ts.)
 */
import type { RelayKeyScope, RelayKeyView } from '@ctll/protocol';
import { toDate, type Queryable } from '../audit/database';

/** What a key resolves to when it is presented. */
export interface KeyRecord {
  id: string;
  userId: string;
  scope: RelayKeyScope;
  /** ms since the epoch; undefined: never expires. */
  expiresAt?: number;
  /** ms since the epoch; undefined: never used. */
  lastUsedAt?: number;
}

export interface NewKeyRow {
  id: string;
  userId: string;
  hash: string;
  name: string;
  scope: RelayKeyScope;
  createdAt: Date;
  expiresAt?: Date;
}

interface Row {
  id: string;
  user_id: string;
  name: string;
  scope: RelayKeyScope;
  created_at: unknown;
  expires_at: unknown;
  last_used_at: unknown;
}

const COLUMNS = 'id::text AS id, user_id, name, scope, created_at, expires_at, last_used_at';

export async function findByHash(db: Queryable, hash: string): Promise<KeyRecord | undefined> {
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM relay_keys WHERE key_hash = $1`, [hash]);
  const row = rows[0];
  if (!row) return undefined;
  return {
    id: row.id,
    userId: row.user_id,
    scope: row.scope,
    expiresAt: toDate(row.expires_at)?.getTime(),
    lastUsedAt: toDate(row.last_used_at)?.getTime(),
  };
}

/** Inserts the key unless the user already holds `maxPerUser` keys; resolves false then. */
export async function insertKey(db: Queryable, key: NewKeyRow, maxPerUser: number): Promise<boolean> {
  // One statement, so two requests at once cannot both slip under the bound by much.
  const { rowCount } = await db.query(
    `INSERT INTO relay_keys (id, user_id, key_hash, name, scope, created_at, expires_at)
     SELECT $1::uuid, $2, $3, $4, $5, $6::timestamptz, $7::timestamptz
     WHERE (SELECT count(*) FROM relay_keys WHERE user_id = $2) < $8`,
    [key.id, key.userId, key.hash, key.name, key.scope, key.createdAt.toISOString(), key.expiresAt?.toISOString() ?? null, maxPerUser],
  );
  return rowCount === 1;
}

export async function listKeys(db: Queryable, userId: string): Promise<RelayKeyView[]> {
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM relay_keys WHERE user_id = $1 ORDER BY created_at, id`, [userId]);
  return rows.map(view);
}

/** Deletes the user's key `id`; resolves false when the user has no such key (another user's included). */
export async function deleteKey(db: Queryable, userId: string, id: string): Promise<boolean> {
  const { rowCount } = await db.query('DELETE FROM relay_keys WHERE id = $1::uuid AND user_id = $2', [id, userId]);
  return rowCount === 1;
}

export function view(row: Row): RelayKeyView {
  const iso = (value: unknown) => toDate(value)?.toISOString() ?? null;
  return { id: row.id, name: row.name, scope: row.scope, createdAt: iso(row.created_at)!, expiresAt: iso(row.expires_at), lastUsedAt: iso(row.last_used_at) };
}
