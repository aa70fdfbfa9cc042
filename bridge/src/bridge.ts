/**
 * The bridge: keeps one tunnel to the relay up for as long as it runs.
 *
 * It owns the connection loop (connect, serve until the connection ends, wait the backoff,
 * connect again), the shared pieces every connection uses (the local target's keep-alive pool,
 * the proxy agent), and the counters and status people and tests look at. Each connection itself
 * belongs to a transport (transport.ts); the bridge only hears its events.
 */
import type http from 'node:http';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { Backoff } from './backoff';
import { BridgeClosedError, ConnectTimeoutError, TransportUnavailableError } from './errors';
import { createLocalTarget, type LocalTarget } from './local-forwarder';
import { resolveOptions, type BridgeOptions, type ResolvedOptions } from './options';
import type { BridgeState, BridgeStatus } from './status';
import { tokenSubject } from './token';
import type { ConnectionEvents, Disconnect, Transport, TransportName, TransportSetup, TunnelConnection } from './transport';
import { userAgent } from './version';
import { connectWebSocket } from './ws-transport';

/** Every transport by name; `poll` slots in here once it exists. */
const TRANSPORTS: Record<TransportName, Transport | undefined> = {
  ws: connectWebSocket,
  poll: undefined,
};

export interface BridgeStats {
  /** Requests answered to their end since the bridge started. */
  served: number;
  /** Local requests running now. */
  active: number;
}

interface Waiter {
  resolve(): void;
  reject(error: Error): void;
}

export class Bridge {
  private readonly options: ResolvedOptions;
  private readonly transport: Transport;
  private readonly backoff: Backoff;
  private readonly target: LocalTarget;
  private readonly relayAgent: http.Agent | undefined;
  private readonly user: string | undefined;
  private readonly waiters = new Set<Waiter>();
  private connection: TunnelConnection | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private state: BridgeState = 'connecting';
  private served = 0;
  private openedAt = 0;
  private lastReason: string | undefined;
  private retryInMs: number | undefined;
  private closing: Promise<void> | undefined;

  constructor(options: BridgeOptions) {
    this.options = resolveOptions(options);
    const transport = TRANSPORTS[this.options.transport];
    if (!transport) throw new TransportUnavailableError(this.options.transport);
    this.transport = transport;
    this.backoff = new Backoff(this.options.backoff);
    this.target = createLocalTarget(this.options.targetUrl);
    this.relayAgent = this.options.proxyUrl ? new HttpsProxyAgent(this.options.proxyUrl) : undefined;
    this.user = tokenSubject(this.options.token);
  }

  /** Starts the connection loop; returns the bridge for chaining. */
  start(): this {
    if (!this.closing && !this.connection && !this.retryTimer) this.connect();
    return this;
  }

  get connected(): boolean {
    return this.state === 'connected';
  }

  get stats(): BridgeStats {
    return { served: this.served, active: this.connection?.activeStreams ?? 0 };
  }

  /** The proxy the relay connection goes through, if any (shown at start-up). */
  get proxy(): string | undefined {
    return this.options.proxyUrl?.origin;
  }

  status(): BridgeStatus {
    return {
      state: this.state,
      server: this.options.server,
      user: this.user,
      target: this.target.label,
      transport: this.options.transport,
      served: this.served,
      active: this.connection?.activeStreams ?? 0,
      reason: this.state === 'retrying' || this.state === 'closed' ? this.lastReason : undefined,
      retryInMs: this.state === 'retrying' ? this.retryInMs : undefined,
    };
  }

  /** Resolves once the tunnel is up (at once if it is); rejects after `timeoutMs` or when the bridge closes. */
  waitConnected(timeoutMs = 10_000): Promise<void> {
    if (this.state === 'connected') return Promise.resolve();
    if (this.closing) return Promise.reject(new BridgeClosedError());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new ConnectTimeoutError(timeoutMs, this.lastReason));
      }, timeoutMs);
      const waiter: Waiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      this.waiters.add(waiter);
    });
  }

  /** Closes the tunnel (WebSocket close 1000), aborts every local request, and stops reconnecting. */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const connection = this.connection;
    if (connection) await connection.close(1000, 'bridge shutting down');
    this.connection = undefined;
    this.target.agent.destroy();
    this.relayAgent?.destroy();
    for (const waiter of this.waiters) waiter.reject(new BridgeClosedError());
    this.waiters.clear();
    this.setState('closed');
  }

  private connect(): void {
    this.retryTimer = undefined;
    this.setState('connecting');
    const events: ConnectionEvents = {
      opened: () => this.onOpened(),
      closed: (disconnect) => this.onClosed(disconnect),
      served: () => {
        this.served += 1;
        this.emitStatus();
      },
      notice: (message) => this.options.onNotice?.(message),
    };
    try {
      this.connection = this.transport(this.setup(), events);
    } catch (error) {
      // A transport that cannot even start (a bad proxy URL, say) is retried like a failed attempt.
      this.onClosed({ reason: (error as Error).message, wasOpen: false, byUs: false, error: error as Error });
    }
  }

  private setup(): TransportSetup {
    return {
      tunnelUrl: this.options.tunnelUrl,
      token: this.options.token,
      userAgent: userAgent(),
      upgradeHeaders: this.options.upgradeHeaders,
      relayAgent: this.relayAgent,
      pingTimeoutMs: this.options.pingTimeoutMs,
      handshakeTimeoutMs: this.options.handshakeTimeoutMs,
      closeTimeoutMs: this.options.closeTimeoutMs,
      target: this.target,
    };
  }

  private onOpened(): void {
    this.openedAt = Date.now();
    this.setState('connected');
    for (const waiter of this.waiters) waiter.resolve();
    this.waiters.clear();
  }

  private onClosed(disconnect: Disconnect): void {
    this.connection = undefined;
    this.lastReason = disconnect.reason;
    if (this.closing) return;
    // Only a connection that stayed up earns a fresh start; one the relay drops at once keeps backing off.
    if (disconnect.wasOpen && Date.now() - this.openedAt >= this.options.stableAfterMs) this.backoff.reset();
    this.retryInMs = this.backoff.next();
    this.retryTimer = setTimeout(() => this.connect(), this.retryInMs);
    this.setState('retrying');
  }

  private setState(state: BridgeState): void {
    this.state = state;
    this.emitStatus();
  }

  private emitStatus(): void {
    this.options.onStatus?.(this.status());
  }
}

/** Creates a bridge and starts connecting. Throws an OptionError (or TransportUnavailableError) on bad options. */
export function startBridge(options: BridgeOptions): Bridge {
  return new Bridge(options).start();
}
