/**
 * How each audit record becomes rows. Every statement is safe to apply twice: a batch whose commit
 * reply was lost is sent again whole, so "none twice" must hold per statement, not per batch.
 * Session rows are upserts on their natural keys, filling in what is still unknown (COALESCE keeps
 * the first value seen); security events are inserts keyed by the id made when their group was written out.
 * Order within the queue is kept, so a session's opening is applied before its closing, but the
 * statements do not depend on it: a closing whose opening was never seen still makes a full row,
 * and an opening written after another replica wrote its proxy's death is born closed.
 */
import type { Queryable } from './database';
import type { AuditRecord, ProxyStartedRecord, ProxyStoppedRecord, TunnelOpenedRecord } from './records';

export async function applyRecord(tx: Queryable, record: AuditRecord): Promise<void> {
  switch (record.type) {
    case 'proxy_started':
      return proxyStarted(tx, record);
    case 'proxy_stopped':
      return record.startedAt ? proxyStopped(tx, { ...record, startedAt: record.startedAt }) : proxyDied(tx, record);
    case 'tunnel_opened':
      return tunnelOpened(tx, record);
    case 'tunnel_closed':
      await tx.query(
        `INSERT INTO tunnel_sessions (owner_hash, proxy_id, proxy_started_at, link_id, transport, disconnected_at,
                                      requests, bytes_to_desktop, bytes_from_desktop, close_reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (owner_hash, proxy_id, proxy_started_at, link_id) DO UPDATE SET
           disconnected_at = COALESCE(tunnel_sessions.disconnected_at, EXCLUDED.disconnected_at),
           close_reason = COALESCE(tunnel_sessions.close_reason, EXCLUDED.close_reason),
           requests = COALESCE(tunnel_sessions.requests, EXCLUDED.requests),
           bytes_to_desktop = COALESCE(tunnel_sessions.bytes_to_desktop, EXCLUDED.bytes_to_desktop),
           bytes_from_desktop = COALESCE(tunnel_sessions.bytes_from_desktop, EXCLUDED.bytes_from_desktop)`,
        [
          record.ownerHash,
          record.proxyId,
          record.proxyStartedAt,
          record.link,
          record.transport,
          record.at,
          record.requests,
          record.bytesToDesktop,
          record.bytesFromDesktop,
          record.reason.slice(0, 200),
        ],
      );
      return;
    case 'key_used':
      // Never backwards (GREATEST skips NULL), so a batch applied late or twice is harmless; a
      // revoked key's row is gone and the update finds nothing.
      await tx.query('UPDATE relay_keys SET last_used_at = GREATEST(last_used_at, $2::timestamptz) WHERE id = $1::uuid', [record.keyId, record.at]);
      return;
    case 'security':
      await tx.query(
        `INSERT INTO security_events (id, at, last_at, count, source, kind, reason, owner_hash, target_hash, route)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (id) DO NOTHING`,
        [
          record.id,
          record.at,
          record.lastAt,
          record.count,
          record.source.slice(0, 64),
          record.kind,
          record.reason.slice(0, 100),
          record.ownerHash ?? null,
          record.targetHash ?? null,
          record.route?.slice(0, 200) ?? null,
        ],
      );
      return;
  }
}

/**
 * The owner's first death reported at or after `since`, that belonged to the proxy instance started
 * at `instanceStart` (no other session of the owner started between the two), as a lateral join
 * giving `death.reported_at`, or NULL. Replicas write their own queues, so a death another
 * replica claimed and wrote (proxyDied below) can land before the rows it should have closed,
 * and find nothing to close. The claim is in `proxy_exit_reports` from the moment it was made,
 * so rows that land later are born closed from it.
 */
function deathSince(owner: string, instanceStart: string, since: string): string {
  return `LEFT JOIN LATERAL (
       SELECT r.reported_at FROM proxy_exit_reports r
       WHERE r.owner_hash = ${owner} AND r.reported_at >= ${since}
         AND NOT EXISTS (SELECT 1 FROM proxy_sessions s WHERE s.owner_hash = ${owner} AND s.started_at > ${instanceStart} AND s.started_at <= r.reported_at)
       ORDER BY r.reported_at LIMIT 1
     ) AS death ON true`;
}

async function proxyStarted(tx: Queryable, record: ProxyStartedRecord): Promise<void> {
  await tx.query(
    `INSERT INTO proxy_sessions (owner_hash, proxy_id, driver, started_at, stopped_at, stop_reason)
     SELECT $1, $2, $3, $4::timestamptz, death.reported_at, CASE WHEN death.reported_at IS NULL THEN NULL ELSE 'error' END
     FROM (SELECT 1) AS one
     ${deathSince('$1', '$4::timestamptz', '$4::timestamptz')}
     ON CONFLICT (owner_hash, proxy_id, started_at) DO NOTHING`,
    [record.ownerHash, record.proxyId, record.driver, record.startedAt],
  );
}

/** An opening; when its proxy's death was written first it is born closed, as proxyDied would have closed it. */
async function tunnelOpened(tx: Queryable, record: TunnelOpenedRecord): Promise<void> {
  await tx.query(
    `INSERT INTO tunnel_sessions (owner_hash, proxy_id, proxy_started_at, link_id, transport, client, connected_at, key_id, disconnected_at, close_reason)
     SELECT $1, $2, $3::timestamptz, $4, $5, $6, $7::timestamptz, $8::uuid, death.reported_at, CASE WHEN death.reported_at IS NULL THEN NULL ELSE 'proxy exited' END
     FROM (SELECT 1) AS one
     ${deathSince('$1', '$3::timestamptz', '$7::timestamptz')}
     ON CONFLICT (owner_hash, proxy_id, proxy_started_at, link_id) DO UPDATE SET
       connected_at = COALESCE(tunnel_sessions.connected_at, EXCLUDED.connected_at),
       client = COALESCE(tunnel_sessions.client, EXCLUDED.client),
       key_id = COALESCE(tunnel_sessions.key_id, EXCLUDED.key_id)`,
    [record.ownerHash, record.proxyId, record.proxyStartedAt, record.link, record.transport, clientName(record.client), record.at, keyIdOf(record.keyId)],
  );
}

/** A stop the manager made (user, idle, shutdown): it knows the instance. */
async function proxyStopped(tx: Queryable, record: ProxyStoppedRecord & { startedAt: string }): Promise<void> {
  await tx.query(
    `INSERT INTO proxy_sessions (owner_hash, proxy_id, driver, started_at, stopped_at, stop_reason) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (owner_hash, proxy_id, started_at) DO UPDATE SET
       stopped_at = COALESCE(proxy_sessions.stopped_at, EXCLUDED.stopped_at),
       stop_reason = COALESCE(proxy_sessions.stop_reason, EXCLUDED.stop_reason)`,
    [record.ownerHash, record.proxyId, record.driver, record.startedAt, record.stoppedAt, record.reason],
  );
  // Desktops still connected when the proxy went away were cut by it. The collector's last pull
  // usually closed them already; this is the net for any it could not reach.
  await tx.query(
    `UPDATE tunnel_sessions SET disconnected_at = $4, close_reason = $5
     WHERE owner_hash = $1 AND proxy_id = $2 AND proxy_started_at = $3 AND disconnected_at IS NULL`,
    [record.ownerHash, record.proxyId, record.startedAt, record.stoppedAt, `proxy stopped (${record.reason})`],
  );
}

/**
 * A proxy that died on its own: the driver knows only whose it was. It closes that owner's open
 * session, if one started before the death; a session started after it (a restart) is left alone,
 * which also keeps a re-applied batch from closing the wrong one.
 */
async function proxyDied(tx: Queryable, record: ProxyStoppedRecord): Promise<void> {
  await tx.query(
    `UPDATE proxy_sessions SET stopped_at = $2, stop_reason = $3
     WHERE owner_hash = $1 AND stopped_at IS NULL AND started_at <= $2`,
    [record.ownerHash, record.stoppedAt, record.reason],
  );
  await tx.query(
    `UPDATE tunnel_sessions SET disconnected_at = $2, close_reason = 'proxy exited'
     WHERE owner_hash = $1 AND disconnected_at IS NULL AND COALESCE(connected_at, $2) <= $2`,
    [record.ownerHash, record.stoppedAt],
  );
}

/** The bridge's product token ("ctll-bridge/0.1.0") from its user agent: name and version, no more. */
export function clientName(userAgent: string): string {
  const token = userAgent.trim().split(/\s+/)[0] ?? '';
  return token.slice(0, 100) || 'unknown';
}

/** A relay key's id as the proxy reported it; anything but a UUID is stored as unknown rather than failing the batch. */
function keyIdOf(keyId: string | undefined): string | null {
  return keyId !== undefined && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(keyId) ? keyId : null;
}
