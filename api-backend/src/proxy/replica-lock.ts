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
 * PROXY_MAX across replicas (`reserve`): a start that makes a new proxy holds a place from its check
 * until its create ends, as a second advisory lock (class "ctlr", the owner's key) on the same
 * session, which every replica sees in pg_locks. The check and the taking of a place happen under
 * one database-wide "capacity" lock, so two replicas never both take the last place; places of a
 * replica that died go with its session. The check itself (engine listing plus places held) is
 * the manager's.
 *
 * When the database cannot be reached the work runs anyway, with a warning: a user's proxy matters
 * more than the order of two starts, and the engine still refuses a second container of the same
 * name. PGlite (one process per data directory) needs none of this: the in-process lock suffices.
 */
import type pg from 'pg';
import { ServiceUnavailableError } from '@ctll/protocol';
import type { Logger } from '../logger';

/** What the manager needs: run `work` while no other replica works on this owner. */
export interface ReplicaLock {
  run<T>(ownerHash: string, work: () => Promise<T>): Promise<T>;
  /**
   * Holds a place for the owner's new proxy: runs `admit` (which throws to refuse) with the owner
   * keys (`ownerKey`) whose places other replicas hold now, while no other replica admits, then
   * keeps the place until the returned release is called (when the create has ended).
   */
  reserve(ownerHash: string, admit: (heldElsewhere: ReadonlySet<number>) => Promise<void>): Promise<() => Promise<void>>;
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
/** A place among PROXY_MAX held by a start in flight ("ctlr"); the owner hash gives the second half. */
const PLACE_CLASS = 0x63746c72;
/** The one lock under which places are counted and taken ("ctlc", 0). */
const CAPACITY_CLASS = 0x63746c63;
const QUERY_TIMEOUT_MS = 10_000;

export class PgReplicaLock implements ReplicaLock {
  private session: Promise<pg.Client> | undefined;
  private closed = false;
  /** The admission in progress in this process (reserve). */
  private admitting: Promise<void> = Promise.resolve();
  private readonly maxWaitMs: number;
  private readonly retryMs: number;

  constructor(private readonly options: PgReplicaLockOptions) {
    this.maxWaitMs = options.maxWaitMs ?? 120_000;
    this.retryMs = options.retryMs ?? 50;
  }

  async run<T>(ownerHash: string, work: () => Promise<T>): Promise<T> {
    const key = ownerKey(ownerHash);
    const holder = await this.acquire(ownerHash, key, LOCK_CLASS);
    try {
      return await work();
    } finally {
      if (holder) await this.release(holder, key, LOCK_CLASS);
    }
  }

  async reserve(ownerHash: string, admit: (heldElsewhere: ReadonlySet<number>) => Promise<void>): Promise<() => Promise<void>> {
    // Session locks are re-entrant: within this process one admission at a time, or two of ours
    // would both pass the database-wide lock.
    const turn = this.admitting.then(() => this.admitOnce(ownerHash, admit));
    this.admitting = turn.then(
      () => undefined,
      () => undefined,
    );
    return turn;
  }

  private async admitOnce(ownerHash: string, admit: (heldElsewhere: ReadonlySet<number>) => Promise<void>): Promise<() => Promise<void>> {
    const key = ownerKey(ownerHash);
    const holder = await this.acquire(ownerHash, 0, CAPACITY_CLASS);
    if (!holder) {
      // The database is away: this replica's own count is all there is.
      await admit(new Set());
      return async () => undefined;
    }
    try {
      let held: Set<number>;
      try {
        const { rows } = await holder.query<{ key: string }>(
          `SELECT objid::text AS key FROM pg_locks
           WHERE locktype = 'advisory' AND granted AND classid = $1 AND objsubid = 2 AND pid <> pg_backend_pid()
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
          [PLACE_CLASS],
        );
        // objid is unsigned; keys are signed 32-bit.
        held = new Set(rows.map((row) => Number(row.key) | 0));
      } catch (error) {
        this.options.logger.warn('replica capacity places unreadable; counting this replica only', { error: (error as Error).message });
        held = new Set();
      }
      await admit(held);
      // Only a clash of two owners' keys could find it taken: then this start goes without a place.
      const placed = await holder
        .query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS locked', [PLACE_CLASS, key])
        .then(({ rows }) => rows[0].locked)
        .catch((error: Error) => {
          this.options.logger.warn('replica capacity place not taken; starting without it', { owner: ownerHash, error: error.message });
          return false;
        });
      return placed ? () => this.release(holder, key, PLACE_CLASS) : async () => undefined;
    } finally {
      await this.release(holder, 0, CAPACITY_CLASS);
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
  private async acquire(ownerHash: string, key: number, lockClass: number): Promise<pg.Client | undefined> {
    const deadline = Date.now() + this.maxWaitMs;
    for (;;) {
      let client: pg.Client;
      let locked: boolean;
      try {
        client = await this.connect();
        const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS locked', [lockClass, key]);
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

  private async release(client: pg.Client, key: number, lockClass: number): Promise<void> {
    // A session that ended since took its locks with it.
    if (this.closed || !this.session || (await this.session.catch(() => undefined)) !== client) return;
    await client.query('SELECT pg_advisory_unlock($1, $2)', [lockClass, key]).catch((error: Error) => {
      this.options.logger.warn('replica lock release failed; dropping the session to free it', { error: error.message });
      this.drop(client);
    });
  }

  private connect(): Promise<pg.Client> {
    if (this.closed) return Promise.reject(new Error('replica lock closed'));
    this.session ??= (async () => {
      // Loaded here, not at the top: the manager and the zrok registry use ownerKey with PGlite too.
      const { Client } = (await import('pg')).default;
      const client = new Client({
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
