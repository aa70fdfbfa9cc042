/**
 * The session audit, assembled: a database (node-postgres when DATABASE_URL is set, PGlite in
 * DATA_DIR otherwise), its migrations, the batching writer and the tunnel collector, behind the
 * few calls the rest of api-backend makes. Nothing outside this folder writes SQL.
 *
 * Lifecycle: start() applies the migrations before the relay listens, retrying an unreachable
 * database until `startupTimeoutMs` and then failing with an error that names DATABASE_URL; after
 * that the relay never waits for the database (writes are queued, see writer.ts). close() comes
 * after the manager's: the manager's last stops are recorded, then flushed for at most
 * `shutdownFlushMs`, then the database is closed.
 */
import { backoffDelay, doublingSteps, withTimeout } from '@ctll/protocol';
import type { Config } from '../config';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';
import type { ProxyDriver, ProxyHandle, StopReason } from '../proxy/driver';
import type { StreamingProxyManager } from '../proxy/manager';
import type { ProxyClient } from '../proxy/proxy-client';
import { TunnelCollector, type CollectorOptions } from './collector';
import { openDatabase, type Database } from './database';
import { AuditStartupError, DatabaseUnavailableError } from './errors';
import { loadMigrations, migrate, type Migration } from './migrations';
import { applyRecord } from './record-sql';
import type { AuditRecord } from './records';
import { startRetention, type PruneResult, type RetentionJob, type RetentionOptions } from './retention';
import type { SecurityFact } from './security';
import { SecurityCounter, type SecurityCounterOptions } from './security-counter';
import { listSessions, type SessionPage, type SessionView } from './sessions';
import { AuditWriter, type AuditWriterOptions } from './writer';

export interface AuditOptions {
  /** DATABASE_URL; unset: PGlite in `<dataDir>/pglite`. */
  databaseUrl?: string;
  dataDir: string;
  migrationsDir: string;
  poolSize: number;
  connectTimeoutMs: number;
  /** How long start-up keeps retrying a database it cannot reach before giving up. */
  startupTimeoutMs: number;
  /** How long close() may spend writing what is still queued. */
  shutdownFlushMs: number;
  writer: Partial<AuditWriterOptions>;
  collector: Partial<CollectorOptions>;
  security: Partial<SecurityCounterOptions>;
  retention: RetentionOptions;
}

export interface AuditDeps {
  driver: ProxyDriver;
  client: ProxyClient;
  metrics: Metrics;
  logger: Logger;
}

/** /health's `checks.database`. */
export interface AuditHealth {
  ok: boolean;
  detail: string;
  queued: number;
  dropped: number;
}

/** An idle writer would not notice an outage, so /health asks the database, this patiently. */
const PROBE_TIMEOUT_MS = 2_000;
/** After the flush, closing the pool or PGlite may take this long before shutdown moves on. */
const CLOSE_TIMEOUT_MS = 5_000;

export class Audit {
  private constructor(
    readonly database: Database,
    readonly writer: AuditWriter,
    readonly collector: TunnelCollector,
    private readonly counter: SecurityCounter,
    private readonly retention: RetentionJob,
    private readonly options: AuditOptions,
    private readonly logger: Logger,
  ) {}

  static async start(options: AuditOptions, deps: AuditDeps): Promise<Audit> {
    const { logger, metrics } = deps;
    const where = options.databaseUrl ? 'DATABASE_URL' : 'DATA_DIR';
    let migrations: Migration[];
    try {
      migrations = loadMigrations(options.migrationsDir);
    } catch (error) {
      throw new AuditStartupError(`audit migrations (AUDIT_MIGRATIONS_DIR): ${(error as Error).message}`, { cause: error });
    }
    let database: Database | undefined;
    try {
      database = await openDatabase({
        url: options.databaseUrl,
        dataDir: options.dataDir,
        poolSize: options.poolSize,
        connectTimeoutMs: options.connectTimeoutMs,
        logger,
      });
      const db = database;
      const result = await untilDeadline(() => migrate(db, migrations), options.startupTimeoutMs, (error, delayMs) =>
        logger.warn('audit database not reachable yet; retrying', { db: db.description, error: error.message, retryInMs: delayMs }),
      );
      if (result.applied.length > 0) logger.info('audit migrations applied', { db: db.description, applied: result.applied });
      if (result.newer.length > 0) logger.warn('audit database has migrations newer than this build', { db: db.description, newer: result.newer });
    } catch (error) {
      await database?.close().catch(() => undefined);
      const described = database?.description ?? (options.databaseUrl ? 'postgres' : 'pglite');
      throw new AuditStartupError(`audit database (${where}: ${described}): ${(error as Error).message}`, { cause: error });
    }

    const writer = new AuditWriter(database, applyRecord, options.writer, logger, {
      onWritten: (count) => metrics.auditWritten.inc(count),
      onDropped: (count, reason) => metrics.auditDropped.inc({ reason }, count),
    }).start();
    metrics.auditQueueLength = () => writer.status().queued;
    const collector = new TunnelCollector(deps.driver, deps.client, (record) => writer.push(record), options.collector, logger, {
      onPullFailed: () => metrics.proxyPullFailures.inc({ loop: 'audit_pull' }),
    }).start();
    const counter = new SecurityCounter((record) => writer.push(record), options.security).start();
    const retention = startRetention(database, options.retention, logger);
    logger.info('audit ready', { db: database.description, driver: database.kind, retentionDays: options.retention.days });
    return new Audit(database, writer, collector, counter, retention, options, logger);
  }

  /** Records every proxy start and stop the manager makes. */
  watch(manager: StreamingProxyManager): void {
    manager.on('started', (event) => {
      this.collector.touch(event.ownerHash);
      this.push({
        type: 'proxy_started',
        ownerHash: event.ownerHash,
        proxyId: event.proxyId,
        driver: event.driver,
        startedAt: event.startedAt.toISOString(),
      });
    });
    manager.on('stopped', (event) =>
      this.push({
        type: 'proxy_stopped',
        ownerHash: event.ownerHash,
        proxyId: event.proxyId,
        driver: event.driver,
        startedAt: event.startedAt?.toISOString(),
        stoppedAt: new Date().toISOString(),
        reason: event.reason,
      }),
    );
  }

  /** The manager's hook right before it removes a proxy: read its journal one last time. */
  beforeRemove(handle: ProxyHandle, reason: StopReason): Promise<void> {
    return this.collector.drain(handle, reason);
  }

  /** Counted per minute and source (security-counter.ts): a flood is a few rows, never one per request. */
  security(fact: SecurityFact): void {
    this.counter.count(fact);
  }

  /** A relay key was used: written as its last use, like any session fact (never on the request's path). */
  keyUsed(keyId: string, at: Date): void {
    this.push({ type: 'key_used', keyId, at: at.toISOString() });
  }

  /** api-backend saw this owner's proxy in use: its journal is read soon. */
  activity(ownerHash: string): void {
    this.collector.touch(ownerHash);
  }

  /** The retention job's run, now (the schedule calls the same). */
  prune(): Promise<PruneResult | undefined> {
    return this.retention.run();
  }

  sessions(ownerHash: string, page: SessionPage): Promise<{ sessions: SessionView[]; next: string | null }> {
    return listSessions(this.database, ownerHash, page);
  }

  /** What the writer knows now, without asking the database: whether its writes fail, and its counts. */
  writerHealth(): AuditHealth {
    const status = this.writer.status();
    const counts = { queued: status.queued, dropped: status.dropped };
    if (status.failure) {
      const { since, error, attempts, retryInMs } = status.failure;
      return { ok: false, detail: `${this.database.description}: failing since ${since} (${error}); attempt ${attempts + 1} in ${retryInMs} ms`, ...counts };
    }
    return { ok: true, detail: this.database.description, ...counts };
  }

  /** The writer's view, and while it sees no failure, a query to the database (an idle writer would not notice an outage). */
  async health(): Promise<AuditHealth> {
    const now = this.writerHealth();
    if (!now.ok) return now;
    const counts = { queued: now.queued, dropped: now.dropped };
    try {
      await withTimeout(this.database.query('SELECT 1'), PROBE_TIMEOUT_MS);
      return { ok: true, detail: this.database.description, ...counts };
    } catch (error) {
      return { ok: false, detail: `${this.database.description}: ${(error as Error).message}`, ...counts };
    }
  }

  async close(): Promise<void> {
    this.collector.stop();
    this.retention.stop();
    this.counter.stop();
    this.counter.flush();
    await this.writer.close(this.options.shutdownFlushMs);
    await withTimeout(this.database.close(), CLOSE_TIMEOUT_MS).catch((error: Error) =>
      this.logger.warn('audit database did not close cleanly', { error: error.message }),
    );
  }

  private push(record: AuditRecord): void {
    this.writer.push(record);
  }
}

const STARTUP_RETRY_STEPS_MS = doublingSteps(250, 2_000);

/** Retries `work` while the database is unreachable, with backoff, until `timeoutMs` has passed. */
async function untilDeadline<T>(work: () => Promise<T>, timeoutMs: number, onRetry: (error: Error, delayMs: number) => void): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      const retryable = error instanceof DatabaseUnavailableError && error.retryable;
      const delayMs = backoffDelay(attempt, { stepsMs: STARTUP_RETRY_STEPS_MS, jitter: 0.2 });
      if (!retryable || Date.now() + delayMs > deadline) throw error;
      onRetry(error, delayMs);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

/** The audit's part of the validated config, with the writer's and collector's own names. */
export function auditOptions(config: Config): AuditOptions {
  const a = config.audit;
  return {
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    migrationsDir: a.migrationsDir,
    poolSize: a.poolSize,
    connectTimeoutMs: a.connectTimeoutMs,
    startupTimeoutMs: a.startupTimeoutMs,
    shutdownFlushMs: a.shutdownFlushMs,
    writer: { batchSize: a.batchSize, flushIntervalMs: a.flushIntervalMs, maxQueue: a.queueMax, maxSecurityQueue: a.securityQueueMax, retryMaxMs: a.retryMaxMs },
    collector: { intervalMs: a.pullIntervalMs, idleIntervalMs: a.idlePullIntervalMs, concurrency: a.pullConcurrency },
    security: { windowMs: a.securityWindowMs, maxKeys: a.securityMaxKeys },
    retention: { days: a.retentionDays, cron: a.retentionCron },
  };
}
