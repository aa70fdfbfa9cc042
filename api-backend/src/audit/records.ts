/**
 * The facts the audit writes, as they wait in the queue. Each carries the moment it happened (an
 * ISO timestamp), so a row written late, after an outage, still tells the right time. Users appear
 * only as owner hashes (proxy/naming.ts); no record has room for a token, a body or a raw user id.
 */
import type { StopReason } from '../proxy/driver';

export interface ProxyStartedRecord {
  type: 'proxy_started';
  ownerHash: string;
  proxyId: string;
  driver: string;
  startedAt: string;
}

export interface ProxyStoppedRecord {
  type: 'proxy_stopped';
  ownerHash: string;
  /** The container id when the driver named it, else 'unknown', for a proxy that died on its own (then startedAt is unset). */
  proxyId: string;
  driver: string;
  startedAt?: string;
  stoppedAt: string;
  reason: StopReason;
}

/** Identifies one proxy instance: link ids (t0, t1, ...) start again in every instance. */
export interface ProxyInstance {
  ownerHash: string;
  proxyId: string;
  proxyStartedAt: string;
}

export interface TunnelOpenedRecord extends ProxyInstance {
  type: 'tunnel_opened';
  link: string;
  transport: 'ws' | 'poll';
  client: string;
  at: string;
  /** The relay key that opened it; absent: a token (or not known). */
  keyId?: string;
}

export interface TunnelClosedRecord extends ProxyInstance {
  type: 'tunnel_closed';
  link: string;
  transport: 'ws' | 'poll';
  at: string;
  /** null: unknown (the proxy stopped before it could count this connection's traffic). */
  requests: number | null;
  bytesToDesktop: number | null;
  bytesFromDesktop: number | null;
  reason: string;
}

export type SecurityKind = 'auth_failure' | 'cross_user' | 'rate_limited';

/** One group of like security events in one window (security-counter.ts), not one event. */
export interface SecurityRecord {
  type: 'security';
  /** Made when the group is written out (a UUID): the row's key, so a retried batch inserts it once. */
  id: string;
  /** The start of the window. */
  at: string;
  /** The last event counted. */
  lastAt: string;
  count: number;
  /** The client address, or 'other' for addresses beyond the per-window cap. */
  source: string;
  kind: SecurityKind;
  reason: string;
  ownerHash?: string;
  targetHash?: string;
  route?: string;
}

/** A relay key was used (auth/relay-keys.ts reports at most one a minute per key): its `last_used_at`. */
export interface KeyUsedRecord {
  type: 'key_used';
  keyId: string;
  at: string;
}

export type SessionRecord = ProxyStartedRecord | ProxyStoppedRecord | TunnelOpenedRecord | TunnelClosedRecord | KeyUsedRecord;
export type AuditRecord = SessionRecord | SecurityRecord;
