/**
 * Live tunnel health for the web console's event streams (`GET /api/me/events`). The relay learns
 * a desktop's state only by asking the user's proxy, so while anyone subscribes, one watch per user
 * reads it every interval, however many tabs are open, and passes on what changed: a new
 * subscriber gets the latest at once, everyone gets each change. The watch stops with its last
 * subscriber. A user has a few streams at most (RateLimitedError past that), and `close()` (the
 * relay draining) ends every stream so none holds the drain up.
 */
import { RateLimitedError, ServiceUnavailableError, type TunnelHealth } from '@ctll/protocol';
import type { Logger } from '../logger';

export interface HealthSubscriber {
  send(health: TunnelHealth): void;
  /** The feed is closing: end the stream. */
  end(): void;
}

export interface HealthFeedOptions {
  /** Reads a user's health; must never start a proxy. */
  read: (userId: string) => Promise<TunnelHealth>;
  intervalMs: number;
  maxPerUser: number;
  logger: Logger;
}

interface Watch {
  subscribers: Set<HealthSubscriber>;
  latest?: TunnelHealth;
  latestJson?: string;
  timer?: NodeJS.Timeout;
}

export class HealthFeed {
  private readonly watches = new Map<string, Watch>();
  private closed = false;

  constructor(private readonly options: HealthFeedOptions) {}

  /** Returns the unsubscribe; throws when the user has too many streams or the feed is closed. */
  subscribe(userId: string, subscriber: HealthSubscriber): () => void {
    if (this.closed) throw new ServiceUnavailableError('the relay is restarting; try again in a moment', 'draining');
    let watch = this.watches.get(userId);
    if (watch && watch.subscribers.size >= this.options.maxPerUser) {
      throw new RateLimitedError(`at most ${this.options.maxPerUser} live status streams per user; close another console tab`, { code: 'too_many_event_streams', retryAfterSeconds: 5 });
    }
    if (!watch) {
      watch = { subscribers: new Set() };
      this.watches.set(userId, watch);
      void this.look(userId, watch);
    } else if (watch.latest) {
      // After the caller has set up its stream: the latest is news to this subscriber only.
      const latest = watch.latest;
      queueMicrotask(() => watch!.subscribers.has(subscriber) && subscriber.send(latest));
    }
    watch.subscribers.add(subscriber);
    return () => this.unsubscribe(userId, watch!, subscriber);
  }

  /** Streams open for a user (for tests and the log). */
  count(userId: string): number {
    return this.watches.get(userId)?.subscribers.size ?? 0;
  }

  close(): void {
    this.closed = true;
    for (const watch of this.watches.values()) {
      clearTimeout(watch.timer);
      for (const subscriber of watch.subscribers) subscriber.end();
    }
    this.watches.clear();
  }

  private unsubscribe(userId: string, watch: Watch, subscriber: HealthSubscriber): void {
    watch.subscribers.delete(subscriber);
    if (watch.subscribers.size > 0 || this.watches.get(userId) !== watch) return;
    clearTimeout(watch.timer);
    this.watches.delete(userId);
  }

  private async look(userId: string, watch: Watch): Promise<void> {
    try {
      const health = await this.options.read(userId);
      const json = JSON.stringify(health);
      if (json !== watch.latestJson) {
        watch.latest = health;
        watch.latestJson = json;
        for (const subscriber of watch.subscribers) subscriber.send(health);
      }
    } catch (error) {
      // The driver could not say (a Docker hiccup): keep the last word and look again next time.
      this.options.logger.warn('could not read a tunnel health for its live status', { error: (error as Error).message });
    }
    if (this.watches.get(userId) !== watch) return;
    watch.timer = setTimeout(() => void this.look(userId, watch), this.options.intervalMs);
    watch.timer.unref();
  }
}
