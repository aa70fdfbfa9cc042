/**
 * The graceful drain that SIGTERM starts. From `begin()` on, api-backend takes no new work: a new
 * request (on a new or a kept-alive connection) is answered 503 `draining` with `Connection: close`,
 * `/health` says "draining" so a load balancer sends elsewhere, and a new tunnel upgrade is refused.
 * What is already running goes on: `settle()` resolves once no request is in flight, or when the
 * grace runs out.
 *
 * The listener stays open during the drain on purpose: a closed one turns every new connection,
 * health checks included, into "connection refused", which nginx and orchestrators read as a
 * crash; an open one can say "draining". It is closed when the drain is over.
 *
 * Exceptions, because they belong to work already in flight rather than new work: a bridge's
 * long-poll, heartbeat and answer (`respond`) for a session it already has (an answer streaming
 * over the poll transport needs its heartbeats and polls to live on), and the dev JWKS. (The
 * private listener, `/metrics` and `/health/details`, is not drained: it stays up until the end.)
 * Long polls and heartbeats are not counted as in flight: a poll waits for work that no longer
 * comes, so it would only hold the drain up to its full timeout; it is cut at the end.
 */
import type { TunnelEnd } from '../proxy/tunnel-handoffs';
import type { RequestHandler } from 'express';
import type { ProxyEndpoint } from '../proxy/driver';
import { ServiceUnavailableError } from '@ctll/protocol';
import { sendError } from './error-handler';

/** Served during the drain, and not counted as work in flight. */
const PASSIVE = /^\/(health|\.well-known\/jwks\.json)$|^\/api\/bridge\/(poll|heartbeat)\//;
/** Served during the drain, and counted: a poll-transport bridge's answer to a stream in flight. */
const CONTINUING = /^\/api\/bridge\/respond\//;

export const DRAINING_MESSAGE = 'the relay is restarting; try again in a moment';

export class Drain {
  private draining = false;
  private inFlight = 0;
  /** Each tunnel spliced through this process or handed to a child proxy, with that proxy. */
  private readonly tunnels = new Map<TunnelEnd, ProxyEndpoint>();
  private readonly idleWaiters = new Set<() => void>();

  get active(): boolean {
    return this.draining;
  }

  /** Requests in flight that the drain waits for. */
  get pending(): number {
    return this.inFlight;
  }

  /** Goes first in the app: refuses new work once draining, and counts what runs. */
  middleware(): RequestHandler {
    return (req, res, next) => {
      const passive = PASSIVE.test(req.path);
      if (this.draining && !passive && !CONTINUING.test(req.path)) {
        res.setHeader('connection', 'close');
        sendError(res, new ServiceUnavailableError(DRAINING_MESSAGE, 'draining'));
        return;
      }
      if (!passive) {
        this.inFlight += 1;
        res.once('close', () => {
          this.inFlight -= 1;
          if (this.inFlight === 0) for (const wake of this.idleWaiters) wake();
        });
      }
      // A request that arrived on a kept-alive connection during the drain ends that connection.
      if (this.draining) res.setHeader('connection', 'close');
      next();
    };
  }

  /** A desktop's tunnel, spliced through to `proxy` or handed to it: ended by `closeTunnels` after the drain. */
  trackTunnel(socket: TunnelEnd, proxy: ProxyEndpoint): void {
    this.tunnels.set(socket, proxy);
    socket.once('close', () => this.tunnels.delete(socket));
  }

  /** The proxies at the other end of the tunnels open through this process, each once. */
  tunnelProxies(): ProxyEndpoint[] {
    const byAddress = new Map<string, ProxyEndpoint>();
    for (const proxy of this.tunnels.values()) byAddress.set(`${proxy.host}:${proxy.port}`, proxy);
    return [...byAddress.values()];
  }

  begin(): void {
    this.draining = true;
  }

  /** Resolves true once nothing is in flight, false if the grace ran out first. */
  settle(graceMs: number): Promise<boolean> {
    if (this.inFlight === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (idle: boolean) => {
        clearTimeout(timer);
        this.idleWaiters.delete(wake);
        resolve(idle);
      };
      const wake = () => done(true);
      const timer = setTimeout(() => done(false), graceMs);
      this.idleWaiters.add(wake);
    });
  }

  /** Resolves once every tracked tunnel has closed, or after `timeoutMs`. */
  async tunnelsClosed(timeoutMs: number): Promise<void> {
    // Each leaves the table on its 'close': what is still in it has yet to close.
    const open = [...this.tunnels.keys()].map((tunnel) => new Promise<void>((resolve) => tunnel.once('close', () => resolve())));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(open), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }

  get openTunnels(): number {
    return this.tunnels.size;
  }

  /** Cuts the tunnels still spliced through this process; the bridges reconnect on their own. */
  closeTunnels(): number {
    const count = this.tunnels.size;
    for (const socket of this.tunnels.keys()) socket.destroy();
    this.tunnels.clear();
    return count;
  }
}
