/**
 * Audit retention: once a day (AUDIT_RETENTION_CRON) rows that ended more than
 * AUDIT_RETENTION_DAYS ago are removed from the session tables and security_events, through the
 * database's own audit_prune(before) (migration 0003). The tables refuse any other DELETE, and
 * audit_prune refuses a cutoff inside the last day, so the append-only promise holds for every
 * row inside the window. 0 days keeps everything and schedules nothing.
 */
import cron from 'node-cron';
import type { Logger } from '../logger';
import type { Queryable } from './database';

export interface RetentionOptions {
  /** Rows older than this many days go; 0 keeps everything. */
  days: number;
  /** node-cron expression for the daily run. */
  cron: string;
}

export interface PruneResult {
  proxies: number;
  tunnels: number;
  security: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** Removes what ended before `days` ago; the database checks the cutoff again. */
export async function pruneAudit(db: Queryable, days: number, now = Date.now()): Promise<PruneResult> {
  const before = new Date(now - days * DAY_MS).toISOString();
  const { rows } = await db.query<{ proxies: unknown; tunnels: unknown; security: unknown }>(
    'SELECT proxies, tunnels, security FROM audit_prune($1::timestamptz)',
    [before],
  );
  const row = rows[0];
  return { proxies: Number(row?.proxies ?? 0), tunnels: Number(row?.tunnels ?? 0), security: Number(row?.security ?? 0) };
}

export interface RetentionJob {
  /** One run now, as the schedule would make it; resolves to what it removed (undefined: retention off). */
  run(): Promise<PruneResult | undefined>;
  stop(): void;
}

export function startRetention(db: Queryable, options: RetentionOptions, logger: Logger): RetentionJob {
  let running: Promise<PruneResult | undefined> | undefined;
  const run = () =>
    (running ??= (async () => {
      if (options.days <= 0) return undefined;
      try {
        const removed = await pruneAudit(db, options.days);
        logger.info('audit retention: old rows removed', { retentionDays: options.days, ...removed });
        return removed;
      } catch (error) {
        // The next day's run tries again; nothing is lost by waiting.
        logger.warn('audit retention run failed', { retentionDays: options.days, error: (error as Error).message });
        throw error;
      }
    })().finally(() => {
      running = undefined;
    }));
  const task = options.days > 0 ? cron.schedule(options.cron, () => void run().catch(() => undefined)) : undefined;
  return { run, stop: () => void task?.stop() };
}
