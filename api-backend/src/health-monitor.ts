/**
 * The relay's health, checked in the background: the proxy driver (for Docker: the engine answers,
 * the image is there) and the audit database, every HEALTH_CHECK_INTERVAL_MS. /health and
 * /health/details answer from the last check plus what this process knows for free (the audit
 * writer's failures and queue, the driver's proxy count), so an anonymous caller never costs an
 * engine call or a database query, however often it asks. A check that changes its verdict is
 * logged with its detail, which the public /health never shows.
 */
import type { DriverHealth, ProxyDriver } from './proxy/driver';
import type { Logger } from './logger';

/** The audit's state: `queued` records wait for the database, `dropped` were lost. */
export interface DatabaseHealth {
  ok: boolean;
  detail: string;
  queued: number;
  dropped: number;
}

export interface HealthReport {
  /** Whether the relay serves: only the proxies decide it (see `status`). */
  serving: boolean;
  /**
   * "degraded" also when only the database is away: its records wait in the queue and tunnels
   * keep working, so an orchestrator must not restart api-backend over it (that would lose the
   * queue), yet an operator should see it.
   */
  status: 'ok' | 'degraded';
  checkedAt: string;
  /** Each check's `ok` and `detail`, plus its counts. */
  checks: Record<string, unknown>;
}

export interface HealthMonitorOptions {
  driver: ProxyDriver;
  /** `probe` asks the database (in the background only); `now` is what the audit's writer knows, free to ask per request. */
  database?: { probe: () => Promise<DatabaseHealth>; now: () => DatabaseHealth };
  intervalMs: number;
  logger: Logger;
}

export class HealthMonitor {
  private last?: { proxies: DriverHealth; database?: DatabaseHealth; at: Date };
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;

  constructor(private readonly options: HealthMonitorOptions) {}

  /** Resolves after the first check, so the first /health already tells the truth. */
  async start(): Promise<void> {
    await this.check();
    this.timer = setInterval(() => void this.check(), this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** The last check, with the proxy count as the driver knows it now. */
  report(): HealthReport {
    const { driver } = this.options;
    const proxies: DriverHealth = this.last?.proxies ?? { ok: false, detail: 'not checked yet' };
    const database = this.database();
    return {
      serving: proxies.ok,
      status: proxies.ok && (database?.ok ?? true) ? 'ok' : 'degraded',
      checkedAt: (this.last?.at ?? new Date(0)).toISOString(),
      checks: {
        [driver.name === 'process' ? 'proxies' : 'docker']: { ...proxies, running: driver.running() },
        ...(database ? { database } : {}),
      },
    };
  }

  /** One round of checks; a round still running is joined, not doubled. */
  check(): Promise<void> {
    this.running ??= this.round().finally(() => (this.running = undefined));
    return this.running;
  }

  /** A failing writer shows at once; otherwise the last probe's verdict, with the queue as it is now. */
  private database(): DatabaseHealth | undefined {
    const now = this.options.database?.now();
    if (!now) return undefined;
    const probed = this.last?.database;
    if (!now.ok || !probed) return now;
    return { ...probed, queued: now.queued, dropped: now.dropped };
  }

  private async round(): Promise<void> {
    const { driver, database, logger } = this.options;
    const [proxies, audit] = await Promise.all([
      driver.health().catch((error: Error): DriverHealth => ({ ok: false, detail: error.message })),
      database?.probe(),
    ]);
    const before = this.last;
    this.last = { proxies, database: audit, at: new Date() };
    const changes: Array<[string, DriverHealth, DriverHealth | undefined]> = [['proxies', proxies, before?.proxies]];
    if (audit) changes.push(['database', audit, before?.database]);
    for (const [name, now, was] of changes) {
      if (now.ok && was && !was.ok) logger.info(`health: ${name} ok again`, { check: name, detail: now.detail });
      if (!now.ok && (!was || was.ok)) logger.warn(`health: ${name} not ok`, { check: name, detail: now.detail });
    }
  }
}
