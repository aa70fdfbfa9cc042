/**
 * The audit's write path. Records wait in a bounded in-memory queue and go to the database in
 * batches, one transaction each, every `flushIntervalMs` or as soon as `batchSize` are waiting, so
 * the code that records (a proxy starting, a token refused) never waits for the database.
 *
 * When the database is away the queue holds and the writer retries the front batch with backoff;
 * the first success empties the queue batch after batch. A record leaves the queue only once its
 * batch committed, so every record arrives; a batch whose commit reply was lost is sent again, and
 * record-sql.ts makes that harmless, so none arrives twice. A record the database refuses (a
 * constraint) would block the queue for good: writing that batch one record at a time finds it,
 * and it is logged and dropped. Beyond `maxQueue` waiting records new ones are dropped, and so are
 * records still waiting when close() runs out of time. Every drop is counted by reason.
 *
 * Session records and security records wait in two queues. Sessions come first: every batch is
 * taken from the session queue while it holds anything, and security records never take a
 * session record's place. Security records (already counted per minute, security-counter.ts) have
 * their own small bound, `maxSecurityQueue`; beyond it new ones are dropped as 'security_overflow'.
 */
import type { Logger } from '../logger';
import { backoffDelay, doublingSteps } from '@ctll/protocol';
import type { Database, Queryable } from './database';
import { DatabaseUnavailableError } from './errors';
import { Fifo } from './fifo';
import type { AuditRecord } from './records';

export interface AuditWriterOptions {
  /** Most records per transaction, and the queue length that triggers a write at once. */
  batchSize: number;
  /** How often waiting records are written when fewer than a batch are waiting. */
  flushIntervalMs: number;
  /** Waiting records beyond this are dropped (and counted): memory stays bounded in a long outage. */
  maxQueue: number;
  /** Waiting security records beyond this are dropped (and counted), whatever room the session queue has. */
  maxSecurityQueue: number;
  /** First retry delay after a failed write; it doubles per failure up to retryMaxMs. */
  retryInitialMs: number;
  retryMaxMs: number;
}

export const WRITER_DEFAULTS: Readonly<AuditWriterOptions> = Object.freeze({
  batchSize: 100,
  flushIntervalMs: 250,
  maxQueue: 100_000,
  maxSecurityQueue: 10_000,
  retryInitialMs: 250,
  retryMaxMs: 5_000,
});

export type DropReason = 'overflow' | 'security_overflow' | 'rejected' | 'shutdown';
export const DROP_REASONS: readonly DropReason[] = ['overflow', 'security_overflow', 'rejected', 'shutdown'];

export interface WriterHooks {
  onWritten?(count: number): void;
  onDropped?(count: number, reason: DropReason): void;
}

export interface WriterStatus {
  /** false while writes fail; the queue then holds what waits. */
  ok: boolean;
  queued: number;
  /** Of `queued`, the security records. */
  securityQueued: number;
  dropped: number;
  failure?: { since: string; error: string; attempts: number; retryInMs: number };
}

type Apply = (tx: Queryable, record: AuditRecord) => Promise<void>;
type Outcome = { ok: true } | { ok: false; error: unknown };

export class AuditWriter {
  private readonly options: AuditWriterOptions;
  private readonly sessions = new Fifo<AuditRecord>();
  private readonly security = new Fifo<AuditRecord>();
  private dropped = 0;
  private writing?: Promise<void>;
  private failure?: { since: number; error: Error; attempts: number; retryAt: number };
  private overflowLogged = false;
  private securityOverflowLogged = false;
  private timer?: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly db: Database,
    private readonly apply: Apply,
    options: Partial<AuditWriterOptions>,
    private readonly logger: Logger,
    private readonly hooks: WriterHooks = {},
  ) {
    this.options = { ...WRITER_DEFAULTS, ...options };
  }

  start(): this {
    this.timer = setInterval(() => this.kick(), this.options.flushIntervalMs);
    this.timer.unref();
    return this;
  }

  push(record: AuditRecord): void {
    if (this.closed) return this.drop(1, 'shutdown');
    if (record.type === 'security') {
      if (this.security.length >= this.options.maxSecurityQueue) {
        if (!this.securityOverflowLogged) {
          this.securityOverflowLogged = true;
          this.logger.error('audit security queue full; dropping new security counts until the database is back', {
            maxSecurityQueue: this.options.maxSecurityQueue,
          });
        }
        return this.drop(1, 'security_overflow');
      }
      this.security.push(record);
      if (this.security.length >= this.options.batchSize) this.kick();
      return;
    }
    if (this.sessions.length >= this.options.maxQueue) {
      if (!this.overflowLogged) {
        this.overflowLogged = true;
        this.logger.error('audit queue full; dropping new records until the database is back', { maxQueue: this.options.maxQueue });
      }
      return this.drop(1, 'overflow');
    }
    this.sessions.push(record);
    if (this.sessions.length >= this.options.batchSize) this.kick();
  }

  status(): WriterStatus {
    const status: WriterStatus = { ok: !this.failure, queued: this.queued, securityQueued: this.security.length, dropped: this.dropped };
    if (this.failure) {
      status.failure = {
        since: new Date(this.failure.since).toISOString(),
        error: this.failure.error.message,
        attempts: this.failure.attempts,
        retryInMs: Math.max(0, this.failure.retryAt - Date.now()),
      };
    }
    return status;
  }

  /** Writes everything waiting; resolves true once the queue is empty, false if `timeoutMs` passed first. */
  async flush(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.queued > 0 || this.writing) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      this.kick();
      // Writing: wait for that write. Not writing with records waiting: backing off until retryAt.
      if (this.writing) await raceTimeout(this.writing, left);
      else await raceTimeout(undefined, Math.min(left, this.failure ? this.failure.retryAt - Date.now() : 10));
    }
    return true;
  }

  /** Stops the timer and flushes for at most `timeoutMs`; what is still waiting then is dropped and counted. */
  async close(timeoutMs: number): Promise<void> {
    clearInterval(this.timer);
    const flushed = await this.flush(timeoutMs);
    this.closed = true;
    if (!flushed) {
      const left = this.queued;
      this.sessions.shift(this.sessions.length);
      this.security.shift(this.security.length);
      this.logger.error('audit records not written before shutdown', { count: left, error: this.failure?.error.message });
      this.drop(left, 'shutdown');
    }
  }

  private kick(): void {
    if (this.writing || this.queued === 0) return;
    if (this.failure && Date.now() < this.failure.retryAt) return;
    this.writing = this.drain().finally(() => {
      this.writing = undefined;
    });
  }

  private get queued(): number {
    return this.sessions.length + this.security.length;
  }

  /** Sessions first: the security queue is read only while no session record waits. */
  private async drain(): Promise<void> {
    while (this.queued > 0) {
      const queue = this.sessions.length > 0 ? this.sessions : this.security;
      const batch = queue.peek(this.options.batchSize);
      const outcome = await this.write(queue, batch);
      if (outcome.ok) continue;
      if (outcome.error instanceof DatabaseUnavailableError) return this.failed(outcome.error);
      if (!(await this.writeOneByOne(queue, batch))) return;
    }
  }

  private async write(queue: Fifo<AuditRecord>, batch: AuditRecord[]): Promise<Outcome> {
    try {
      await this.db.transaction(async (tx) => {
        for (const record of batch) await this.apply(tx, record);
      });
    } catch (error) {
      return { ok: false, error };
    }
    queue.shift(batch.length);
    this.hooks.onWritten?.(batch.length);
    this.recovered();
    return { ok: true };
  }

  /** Finds the record(s) the database refuses; false when the database went away meanwhile. */
  private async writeOneByOne(queue: Fifo<AuditRecord>, batch: AuditRecord[]): Promise<boolean> {
    for (const record of batch) {
      const outcome = await this.write(queue, [record]);
      if (outcome.ok) continue;
      if (outcome.error instanceof DatabaseUnavailableError) {
        this.failed(outcome.error);
        return false;
      }
      queue.shift(1);
      this.logger.error('audit record refused by the database; dropped', { type: record.type, error: (outcome.error as Error).message });
      this.drop(1, 'rejected');
    }
    return true;
  }

  private failed(error: Error): void {
    const attempts = (this.failure?.attempts ?? 0) + 1;
    const delay = backoffDelay(attempts, { stepsMs: doublingSteps(this.options.retryInitialMs, this.options.retryMaxMs), jitter: 0.2 });
    if (!this.failure) this.logger.warn('audit database unavailable; records wait in the queue', { error: error.message, queued: this.queued });
    this.failure = { since: this.failure?.since ?? Date.now(), error, attempts, retryAt: Date.now() + delay };
  }

  private recovered(): void {
    if (!this.failure) return;
    this.logger.info('audit database back; writing the queue', { downForMs: Date.now() - this.failure.since, queued: this.queued });
    this.failure = undefined;
    this.overflowLogged = false;
    this.securityOverflowLogged = false;
  }

  private drop(count: number, reason: DropReason): void {
    if (count <= 0) return;
    this.dropped += count;
    this.hooks.onDropped?.(count, reason);
  }
}

/** Waits for `promise` (if any) or `ms`, whichever comes first, leaving no timer behind. */
async function raceTimeout(promise: Promise<unknown> | undefined, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const elapsed = new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(1, ms))));
  await (promise ? Promise.race([promise, elapsed]) : elapsed);
  clearTimeout(timer);
}
