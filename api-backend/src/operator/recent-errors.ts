/**
 * Error answers of this api-backend over the last hour, by code, for the operator's view. Fed by
 * the one error handler (http/error-handler.ts), so every error a route raises is counted once.
 * Answers a user's proxy gives itself (a desktop offline, a limit) pass through as they are and
 * are not counted here. Memory is bounded: at most MAX_CODES codes a minute, the rest as `other`.
 */
import { MinuteRing, type RecentErrorCount } from '@ctll/protocol';

const MAX_CODES = 50;

interface Seen {
  status: number;
  count: number;
  last: number;
}

export class RecentErrors {
  private readonly ring = new MinuteRing(() => new Map<string, Seen>());

  record(code: string, status: number, now = Date.now()): void {
    const minute = this.ring.at(now);
    const key = minute.has(code) || minute.size < MAX_CODES ? code : 'other';
    const seen = minute.get(key) ?? { status, count: 0, last: now };
    seen.count += 1;
    seen.last = now;
    minute.set(key, seen);
  }

  /** Each code's count over the last hour, the most frequent first. */
  byCode(now = Date.now()): RecentErrorCount[] {
    const totals = new Map<string, Seen>();
    for (const { value } of this.ring.recent(now)) {
      for (const [code, seen] of value) {
        const total = totals.get(code) ?? { status: seen.status, count: 0, last: 0 };
        total.count += seen.count;
        total.last = Math.max(total.last, seen.last);
        totals.set(code, total);
      }
    }
    return [...totals]
      .map(([code, seen]) => ({ code, status: seen.status, count: seen.count, lastAt: new Date(seen.last).toISOString() }))
      .sort((a, b) => b.count - a.count || a.code.localeCompare(b.code));
  }
}
