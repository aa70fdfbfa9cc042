/**
 * The zrok share registry: which public share URLs each user's desktop has offered.
 *
 * A share lives as long as its desktop keeps heartbeating: each heartbeat pushes its expiry
 * ZROK_SHARE_TTL_MS ahead, reads treat an expired share as gone, and a sweep frees the memory.
 * Shares are owned by the user's hash (the same one that names the user's proxy), so another
 * user's tunnel id is indistinguishable from an unknown one: both are 404.
 *
 * State is in memory on purpose: a share is soft state that its desktop re-asserts every
 * heartbeat (a bridge whose heartbeat gets 404 registers again), so a restart loses nothing a
 * third of a TTL does not restore. The limit: with several api-backend replicas, a share is known
 * only to the replica that saw its register/heartbeat, so replicas need sticky routing per user,
 * or this class needs a shared store behind the same methods.
 *
 * Share URLs and tokens are never logged (a zrok URL embeds its share token): lines carry the
 * owner's hash and the tunnel id only.
 */
import { randomBytes } from 'node:crypto';
import { BadRequestError, NotFoundError } from '@ctll/protocol';
import type { Logger } from '../logger';

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
  // Reads already ignore expired shares; the sweep only returns their memory.
  sweepIntervalMs: 30_000,
  now: Date.now,
});

export class ShareRegistry {
  private readonly options: Required<RegistryOptions>;
  private readonly byOwner = new Map<string, Map<string, ShareRecord>>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
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
    this.timer ??= setInterval(() => this.sweep(), Math.min(this.options.sweepIntervalMs, this.options.ttlMs)).unref();
    return this;
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Registers a share; the same URL again from the same owner refreshes it and keeps its id. */
  register(ownerHash: string, info: ShareInfo): { record: ShareRecord; created: boolean } {
    const shares = this.live(ownerHash);
    const now = this.options.now();
    const existing = [...shares.values()].find((record) => record.publicUrl === info.publicUrl);
    if (existing) {
      Object.assign(existing, { localUrl: info.localUrl, shareToken: info.shareToken, lastHeartbeatAt: now, expiresAt: now + this.options.ttlMs });
      return { record: existing, created: false };
    }
    if (shares.size >= this.options.maxSharesPerUser) {
      throw new BadRequestError(`at most ${this.options.maxSharesPerUser} shares per user: unregister one first`, 'too_many_shares');
    }
    const record: ShareRecord = {
      ...info,
      tunnelId: `zt${randomBytes(12).toString('hex')}`,
      ownerHash,
      registeredAt: now,
      lastHeartbeatAt: now,
      expiresAt: now + this.options.ttlMs,
    };
    shares.set(record.tunnelId, record);
    this.byOwner.set(ownerHash, shares);
    this.logger.info('zrok share registered', { owner: ownerHash, tunnel: record.tunnelId });
    return { record, created: true };
  }

  heartbeat(ownerHash: string, tunnelId: string): ShareRecord {
    const record = this.get(ownerHash, tunnelId);
    record.lastHeartbeatAt = this.options.now();
    record.expiresAt = record.lastHeartbeatAt + this.options.ttlMs;
    return record;
  }

  unregister(ownerHash: string, tunnelId: string): ShareRecord {
    const record = this.get(ownerHash, tunnelId);
    this.drop(record, 'zrok share unregistered');
    return record;
  }

  /** The owner's live share, or a 404 for unknown, expired and other users' ids alike. */
  get(ownerHash: string, tunnelId: string): ShareRecord {
    const record = this.live(ownerHash).get(tunnelId);
    if (!record) throw new NotFoundError('no such share: it expired or was never registered (register it again)');
    return record;
  }

  /** The owner's live shares, the most recently heard from first. */
  list(ownerHash: string): ShareRecord[] {
    return [...this.live(ownerHash).values()].sort((a, b) => b.lastHeartbeatAt - a.lastHeartbeatAt);
  }

  /** Drops every expired share; returns how many. */
  sweep(): number {
    let dropped = 0;
    for (const ownerHash of [...this.byOwner.keys()]) dropped += this.expire(ownerHash);
    return dropped;
  }

  private live(ownerHash: string): Map<string, ShareRecord> {
    this.expire(ownerHash);
    return this.byOwner.get(ownerHash) ?? new Map();
  }

  private expire(ownerHash: string): number {
    const shares = this.byOwner.get(ownerHash);
    if (!shares) return 0;
    const now = this.options.now();
    let dropped = 0;
    for (const record of [...shares.values()]) {
      if (record.expiresAt > now) continue;
      this.drop(record, 'zrok share expired: no heartbeat');
      dropped += 1;
    }
    return dropped;
  }

  private drop(record: ShareRecord, message: string): void {
    const shares = this.byOwner.get(record.ownerHash);
    shares?.delete(record.tunnelId);
    if (shares?.size === 0) this.byOwner.delete(record.ownerHash);
    this.logger.info(message, { owner: record.ownerHash, tunnel: record.tunnelId });
  }
}
