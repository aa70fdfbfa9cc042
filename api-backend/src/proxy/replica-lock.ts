/**
 * Serialises the start and stop of one user's proxy across api-backend replicas that share one
 * PostgreSQL database (DATABASE_URL). The manager's in-process KeyedLock still comes first, so
 * within a replica one request per owner asks here at a time; this adds the other replicas.
 *
 * One dedicated connection per replica holds session-level advisory locks, one key per owner, taken
 * with pg_try_advisory_lock and retried on a short timer: a blocking pg_advisory_lock would make the
 * one connection wait for one owner while another's lock is free, and a lock per pooled transaction
 * would hold audit connections (a pool of five) for the length of a container start. A replica that
 * dies loses its connection, and Postgres drops its locks with it: nobody waits for a dead replica.
 *
 * When the database cannot be reached the work runs anyway, with a warning: a user's proxy matters
 * more than the order of two starts, and the engine still refuses a second container of the same
 * name. PGlite (one process per data directory) needs none of this: the in-process lock suffices.
 */
import pg from 'pg';
import { ServiceUnavailableError } from '@ctll/protocol';
import type { Logger } from '../logger';

/** What the manager needs: run `work` while no other replica works on this owner. */
export interface ReplicaLock {
  run<T>(ownerHash: string, work: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface PgReplicaLockOptions {
  url: string;
  connectTimeoutMs: number;
  logger: Logger;
  /** Longest wait for another replica's start or stop of the same owner; past it 503 `busy`. Default 120 s. */
  maxWaitMs?: number;
  /** Pause between tries while another replica holds the owner. Default 50 ms (plus jitter). */
  retryMs?: number;
}

/** First half of the two-part lock key ("ctlp" in ASCII); the owner hash gives the second. */
const LOCK_CLASS = 0x63746c70;
const QUERY_TIMEOUT_MS = 10_000;

export class PgReplicaLock implements ReplicaLock {
  private session: Promise<pg.Client> | undefined;
  private closed = false;
  private readonly maxWaitMs: number;
  private readonly retryMs: number;

  constructor(private readonly options: PgReplicaLockOptions) {
    this.maxWaitMs = options.maxWaitMs ?? 120_000;
    this.retryMs = options.retryMs ?? 50;
  }

  async run<T>(ownerHash: string, work: () => Promise<T>): Promise<T> {
    const key = ownerKey(ownerHash);
    const holder = await this.acquire(ownerHash, key);
    try {
      return await work();
    } finally {
      if (holder) await this.release(holder, key);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const session = this.session;
    this.session = undefined;
    // Ending the session releases whatever it still holds.
    if (session) await session.then((client) => client.end()).catch(() => undefined);
  }

  /** The session that now holds the owner's lock, or undefined when the database is away (the work runs unlocked). */
  private async acquire(ownerHash: string, key: number): Promise<pg.Client | undefined> {
    const deadline = Date.now() + this.maxWaitMs;
    for (;;) {
      let client: pg.Client;
      let locked: boolean;
      try {
        client = await this.connect();
        const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS locked', [LOCK_CLASS, key]);
        locked = rows[0].locked;
      } catch (error) {
        this.options.logger.warn('replica lock unavailable; starting or stopping this proxy without it', { owner: ownerHash, error: (error as Error).message });
        return undefined;
      }
      if (locked) return client;
      if (Date.now() > deadline) {
        throw new ServiceUnavailableError("another api-backend replica is still starting or stopping this user's proxy; try again in a moment", 'busy');
      }
      await new Promise((resolve) => setTimeout(resolve, this.retryMs * (0.5 + Math.random())));
    }
  }

  private async release(client: pg.Client, key: number): Promise<void> {
    // A session that ended since took its locks with it.
    if (this.closed || !this.session || (await this.session.catch(() => undefined)) !== client) return;
    await client.query('SELECT pg_advisory_unlock($1, $2)', [LOCK_CLASS, key]).catch((error: Error) => {
      this.options.logger.warn('replica lock release failed; dropping the session to free it', { error: error.message });
      this.drop(client);
    });
  }

  private connect(): Promise<pg.Client> {
    if (this.closed) return Promise.reject(new Error('replica lock closed'));
    this.session ??= (async () => {
      const client = new pg.Client({
        connectionString: this.options.url,
        connectionTimeoutMillis: this.options.connectTimeoutMs,
        query_timeout: QUERY_TIMEOUT_MS,
        keepAlive: true,
        application_name: 'ctll-api-backend-locks',
      });
      // A broken session (server restart, network) is dropped; the next run opens another.
      client.on('error', (error) => {
        this.options.logger.warn('replica lock session lost', { error: error.message });
        this.drop(client);
      });
      client.on('end', () => this.drop(client));
      try {
        await client.connect();
      } catch (error) {
        this.session = undefined;
        throw error;
      }
      return client;
    })();
    return this.session;
  }

  private drop(client: pg.Client): void {
    const session = this.session;
    if (!session) return;
    void session.then(
      (current) => {
        if (current !== client) return;
        if (this.session === session) this.session = undefined;
        client.end().catch(() => undefined);
      },
      () => undefined,
    );
  }
}

/** The owner hash (16 hex digits) folded to a signed 32-bit key; a rare clash only serialises two owners. */
export function ownerKey(ownerHash: string): number {
  return Number.parseInt(ownerHash.slice(0, 8), 16) | 0;
}
