/**
 * The read side: one user's proxy and tunnel sessions, newest first, one page at a time. Rows are
 * found by owner hash only, so a caller can reach no one else's. Both tables keep `sort_at` (when
 * the session started, or ended if its start was never seen) and are merged on it; the cursor is
 * the last row's (sort_at, kind, id), so pages stay stable while new sessions arrive.
 */
import { BadRequestError } from '@ctll/protocol';
import type { StopReason } from '../proxy/driver';
import { toDate, type Queryable } from './database';

export interface SessionPage {
  limit: number;
  cursor?: string;
}

interface SessionBase {
  /** Stable across pages: "p<n>" for a proxy session, "t<n>" for a tunnel session. */
  id: string;
  startedAt: string | null;
  /** null while the session runs. */
  endedAt: string | null;
}

export interface ProxySessionView extends SessionBase {
  kind: 'proxy';
  driver: string;
  reason: StopReason | null;
}

export interface TunnelSessionView extends SessionBase {
  kind: 'tunnel';
  transport: 'ws' | 'poll';
  /** The bridge's name and version, e.g. ctll-bridge/0.1.0. */
  client: string | null;
  reason: string | null;
  /** null: unknown (the connection was cut by its proxy stopping). */
  requests: number | null;
  bytesToDesktop: number | null;
  bytesFromDesktop: number | null;
  /**
   * The relay key that opened the tunnel (its id, and its name while it exists; never the key);
   * null: the user's own token, or not known (an opening pieced together from the proxy's status).
   */
  key: { id: string; name: string | null } | null;
}

export type SessionView = ProxySessionView | TunnelSessionView;

interface Row {
  kind: 'proxy' | 'tunnel';
  id: string;
  sort_at: unknown;
  driver: string | null;
  transport: 'ws' | 'poll' | null;
  client: string | null;
  started_at: unknown;
  ended_at: unknown;
  reason: string | null;
  requests: number | null;
  bytes_to_desktop: number | null;
  bytes_from_desktop: number | null;
  key_id: string | null;
  key_name: string | null;
}

// Inner filters use the (owner_hash, sort_at) indexes; the outer one breaks ties exactly.
const SQL = `
SELECT kind, id::text AS id, sort_at, driver, transport, client, started_at, ended_at, reason,
       requests, bytes_to_desktop, bytes_from_desktop, key_id,
       (SELECT k.name FROM relay_keys k WHERE k.id = s.key_id) AS key_name
FROM (
  SELECT 'proxy'::text AS kind, id, sort_at, driver, NULL::text AS transport, NULL::text AS client,
         started_at, stopped_at AS ended_at, stop_reason AS reason,
         NULL::float8 AS requests, NULL::float8 AS bytes_to_desktop, NULL::float8 AS bytes_from_desktop,
         NULL::uuid AS key_id
  FROM proxy_sessions
  WHERE owner_hash = $1 AND ($2::timestamptz IS NULL OR sort_at <= $2::timestamptz)
  UNION ALL
  SELECT 'tunnel'::text, id, sort_at, NULL::text, transport, client,
         connected_at, disconnected_at, close_reason,
         requests::float8, bytes_to_desktop::float8, bytes_from_desktop::float8, key_id
  FROM tunnel_sessions
  WHERE owner_hash = $1 AND ($2::timestamptz IS NULL OR sort_at <= $2::timestamptz)
) s
WHERE $2::timestamptz IS NULL OR (sort_at, kind, id) < ($2::timestamptz, $3::text, $4::bigint)
ORDER BY sort_at DESC, kind DESC, id DESC
LIMIT $5`;

export async function listSessions(db: Queryable, ownerHash: string, page: SessionPage): Promise<{ sessions: SessionView[]; next: string | null }> {
  const after = page.cursor ? decodeCursor(page.cursor) : undefined;
  const { rows } = await db.query<Row>(SQL, [ownerHash, after?.sortAt ?? null, after?.kind ?? null, after?.id ?? null, page.limit + 1]);
  const more = rows.length > page.limit;
  const shown = rows.slice(0, page.limit);
  const last = shown[shown.length - 1];
  return {
    sessions: shown.map(view),
    next: more && last ? encodeCursor({ sortAt: toDate(last.sort_at)!.toISOString(), kind: last.kind, id: String(last.id) }) : null,
  };
}

function view(row: Row): SessionView {
  const base = { startedAt: iso(row.started_at), endedAt: iso(row.ended_at) };
  if (row.kind === 'proxy') {
    return { kind: 'proxy', id: `p${row.id}`, ...base, driver: row.driver ?? 'unknown', reason: row.reason as StopReason | null };
  }
  return {
    kind: 'tunnel',
    id: `t${row.id}`,
    ...base,
    transport: row.transport ?? 'ws',
    client: row.client,
    reason: row.reason,
    requests: row.requests,
    bytesToDesktop: row.bytes_to_desktop,
    bytesFromDesktop: row.bytes_from_desktop,
    key: row.key_id ? { id: String(row.key_id), name: row.key_name } : null,
  };
}

const iso = (value: unknown): string | null => toDate(value)?.toISOString() ?? null;

interface Cursor {
  sortAt: string;
  kind: 'proxy' | 'tunnel';
  id: string;
}

export function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify([cursor.sortAt, cursor.kind, cursor.id]), 'utf8').toString('base64url');
}

/** Cursors are opaque to callers; one we did not make is a 400, never a query. */
export function decodeCursor(text: string): Cursor {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    parsed = undefined;
  }
  if (
    Array.isArray(parsed) &&
    parsed.length === 3 &&
    typeof parsed[0] === 'string' &&
    !Number.isNaN(Date.parse(parsed[0])) &&
    (parsed[1] === 'proxy' || parsed[1] === 'tunnel') &&
    typeof parsed[2] === 'string' &&
    /^\d{1,18}$/.test(parsed[2])
  ) {
    // Re-written by us, so Postgres never parses a caller's idea of a date.
    return { sortAt: new Date(parsed[0]).toISOString(), kind: parsed[1], id: parsed[2] };
  }
  throw new BadRequestError('cursor: not a cursor this server gave out (use the `next` of the previous page)', 'bad_cursor');
}
