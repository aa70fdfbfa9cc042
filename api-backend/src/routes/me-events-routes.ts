/**
 * `GET /api/me/events`: the caller's tunnel health as server-sent events, for the console's My PC
 * page. A `health` event (protocol's TunnelHealth, the same as `/api/tunnel/:userId/health`)
 * comes at once and then on each change (events/health-feed.ts); a comment line every
 * HEARTBEAT_MS keeps proxies in between from timing the stream out. The stream ends when the
 * caller leaves, when the relay drains, and when the caller's credential expires (the console
 * reconnects with its renewed token: a stream must not outlive the token that opened it).
 * The console reads it with fetch, not EventSource, which cannot send an Authorization header.
 */
import { Router } from 'express';
import { HEALTH_EVENT, type TunnelHealth } from '@ctll/protocol';
import type { Caller } from '../auth/authenticator';
import type { HealthFeed } from '../events/health-feed';

const HEARTBEAT_MS = 15_000;
/** Longest a setTimeout can wait; a credential further out is simply not timed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export function meEventsRoutes(feed: HealthFeed): Router {
  const router = Router();

  router.get('/api/me/events', (req, res, next) => {
    const caller = res.locals.caller as Caller;
    let ended = false;
    /** The heartbeat and the credential's expiry. */
    const timers: NodeJS.Timeout[] = [];
    let unsubscribe: (() => void) | undefined;
    const end = () => {
      if (ended) return;
      ended = true;
      for (const timer of timers) clearTimeout(timer);
      unsubscribe?.();
      res.end();
    };
    try {
      unsubscribe = feed.subscribe(caller.userId, {
        send: (health: TunnelHealth) => void res.write(`event: ${HEALTH_EVENT}\ndata: ${JSON.stringify(health)}\n\n`),
        end,
      });
    } catch (error) {
      next(error);
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      // A proxy in between that honours it would otherwise buffer the stream and deliver events
      // late, in bunches (this project's nginx ignores upstream X-Accel headers and has its own location).
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
    timers.push(setInterval(() => res.write(': heartbeat\n\n'), HEARTBEAT_MS));
    if (caller.expiresAt !== undefined) {
      const left = caller.expiresAt - Date.now();
      if (left < MAX_TIMER_MS) timers.push(setTimeout(end, Math.max(0, left)));
    }
    // The heartbeats show the stream alive; the server's idle timeout is for silent sockets.
    req.socket.setTimeout(0);
    res.once('close', end);
  });

  return router;
}
