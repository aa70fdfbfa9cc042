/**
 * The bridge: keeps one tunnel to the relay up for as long as it runs.
 *
 * It owns the connection loop (connect, serve until the connection ends, wait the backoff,
 * connect again), the shared pieces every connection uses (the local target's keep-alive pool,
 * the relay agents), and the counters and status people and tests look at. Each connection itself
 * belongs to a transport (transport.ts); the bridge only hears its events.
 *
 * It also decides which transport the loop uses. With `ws` (the default) and fallback on, a
 * WebSocket attempt that fails the way blocked WebSockets fail (fallback.ts) switches the loop to
 * long-polling at once; while it polls, a WebSocket is tried every `wsRetryMs` beside it, and the
 * first one that opens takes over: new requests go to it (the relay prefers WebSockets), and the
 * polling connection finishes the requests it has, then closes.
 *
 * Credentials come from a TokenSource, asked before every connection (and by the transports for
 * each poll request and each in-band renewal), so a renewed token is used from then on. A tunnel
 * the relay closes because its token expired (TOKEN_EXPIRED_CLOSE) is opened again at once with
 * the source's current token; when that one has expired too, the status says to sign in again.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { Backoff, RELAY_RESTART_CLOSE, TOKEN_EXPIRED_CLOSE } from '@ctll/protocol';
import { AuthRefusedError, BridgeClosedError, ConnectTimeoutError, RelayRejectedError } from './errors';
import { suggestsBlockedWebSocket } from './fallback';
import { LocalTargets } from './local-targets';
import { resolveOptions, type BridgeOptions, type ResolvedOptions } from './options';
import { connectPolling } from './poll-transport';
import { proxyAgentFor } from './proxy-agent';
import { formatDelay, type BridgeState, type BridgeStatus } from './status';
import { TargetWatch } from './target-watch';
import { tokenSubject } from './token';
import type { ConnectionEvents, Disconnect, Transport, TransportName, TransportSetup, TunnelConnection } from './transport';
import { userAgent } from './version';
import { connectWebSocket } from './ws-transport';

/** Every transport by name. */
const TRANSPORTS: Record<TransportName, Transport> = {
  ws: connectWebSocket,
  poll: connectPolling,
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
  private readonly backoff: Backoff;
  private readonly targets: LocalTargets;
  /** Asks each target whether it is there; each change goes to the status and the relay. */
  private readonly targetWatch: TargetWatch;
  private readonly relayAgent: http.Agent | undefined;
  private readonly httpAgent: http.Agent;
  private user: string | undefined;
  private readonly clientId = randomUUID();
  private readonly waiters = new Set<Waiter>();
  /** The transport the connection loop uses now. */
  private active: TransportName;
  private connection: TunnelConnection | undefined;
  /** Connections replaced by a better one, finishing the requests they had. */
  private readonly draining = new Set<TunnelConnection>();
  /** While fallen back to polling: the WebSocket being tried beside it, and the timer for the next try. */
  private probe: TunnelConnection | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Set while the loop waits for the token source before connecting. */
  private awaitingToken = false;
  private state: BridgeState = 'connecting';
  private served = 0;
  private openedAt = 0;
  private lastReason: string | undefined;
  private retryInMs: number | undefined;
  /** Refusals of the credential since the last connection that opened (see `authFailExit`). */
  private authRefusals = 0;
  /** Set the moment close() is called: connections closing during the shutdown must not schedule retries. */
  private stopping = false;
  private closing: Promise<void> | undefined;

  constructor(options: BridgeOptions) {
    this.options = resolveOptions(options);
    this.active = this.options.transport;
    this.backoff = new Backoff(this.options.backoff);
    this.targets = new LocalTargets(this.options.targetUrl, this.options.namedTargets);
    this.relayAgent = this.options.proxyUrl ? proxyAgentFor(this.options.proxyUrl) : undefined;
    // Polls follow each other on one warm connection; answers stream on connections of their own.
    const pool = { keepAlive: true, keepAliveMsecs: 1_000, maxSockets: Infinity, scheduling: 'lifo' as const };
    this.httpAgent = this.options.proxyUrl
      ? proxyAgentFor(this.options.proxyUrl, pool)
      : this.options.relayUrl.protocol === 'https:'
        ? new https.Agent(pool)
        : new http.Agent(pool);
    this.targetWatch = new TargetWatch(this.targets, {
      intervalMs: this.options.probeIntervalMs,
      timeoutMs: this.options.probeTimeoutMs,
      onChange: () => this.onTargetChange(),
    });
  }

  /** Starts the connection loop; returns the bridge for chaining. */
  start(): this {
    if (!this.stopping && !this.connection && !this.retryTimer && !this.awaitingToken) this.connect();
    if (!this.stopping) this.targetWatch.start();
    return this;
  }

  get connected(): boolean {
    return this.state === 'connected';
  }

  /** The transport in use now (after a fallback, `poll` although `ws` was asked for). */
  get transport(): TransportName {
    return this.active;
  }

  get stats(): BridgeStats {
    return { served: this.served, active: this.activeStreams() };
  }

  /** The proxy the relay connection goes through, if any (shown at start-up). */
  get proxy(): string | undefined {
    // Not .origin: that is "null" for socks5: URLs.
    const proxy = this.options.proxyUrl;
    return proxy && `${proxy.protocol}//${proxy.host}`;
  }

  status(): BridgeStatus {
    return {
      state: this.state,
      server: this.options.server,
      user: this.user,
      target: this.targets.default.label,
      transport: this.active,
      served: this.served,
      active: this.activeStreams(),
      reason: this.state === 'retrying' || this.state === 'closed' ? this.lastReason : undefined,
      retryInMs: this.state === 'retrying' ? this.retryInMs : undefined,
      targetHealth: this.targetWatch.defaultHealth,
      ...(this.targets.all.length > 1 ? { targets: this.targetWatch.named } : {}),
    };
  }

  /** Resolves once the tunnel is up (at once if it is); rejects after `timeoutMs` or when the bridge closes. */
  waitConnected(timeoutMs = 10_000): Promise<void> {
    if (this.state === 'connected') return Promise.resolve();
    if (this.stopping) return Promise.reject(new BridgeClosedError());
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
    this.stopping = true;
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    this.targetWatch.stop();
    clearTimeout(this.retryTimer);
    clearTimeout(this.probeTimer);
    this.retryTimer = undefined;
    const connections = [this.connection, this.probe, ...this.draining].filter((c): c is TunnelConnection => c !== undefined);
    await Promise.all(connections.map((connection) => connection.close(1000, 'bridge shutting down')));
    this.connection = undefined;
    this.probe = undefined;
    this.draining.clear();
    this.options.tokens.close();
    this.targets.destroy();
    this.relayAgent?.destroy();
    this.httpAgent.destroy();
    for (const waiter of this.waiters) waiter.reject(new BridgeClosedError());
    this.waiters.clear();
    this.setState('closed');
  }

  private activeStreams(): number {
    let active = this.connection?.activeStreams ?? 0;
    for (const connection of this.draining) active += connection.activeStreams;
    return active;
  }

  private connect(): void {
    this.retryTimer = undefined;
    this.setState('connecting');
    this.awaitingToken = true;
    this.options.tokens.get().then(
      (token) => {
        this.awaitingToken = false;
        // A WebSocket tried beside polling may have taken over meanwhile.
        if (!this.stopping && !this.connection) this.open(token);
      },
      (error: Error) => {
        this.awaitingToken = false;
        if (!this.connection) this.onClosed({ reason: `could not get a token: ${error.message}`, wasOpen: false, byUs: false, error });
      },
    );
  }

  private open(token: string): void {
    this.user = tokenSubject(token) ?? this.user;
    let connection: TunnelConnection | undefined;
    const events = this.eventsFor(() => connection, {
      opened: () => this.onOpened(),
      closed: (disconnect) => this.onClosed(disconnect),
    });
    try {
      connection = TRANSPORTS[this.active](this.setup(token), events);
      this.connection = connection;
    } catch (error) {
      // A transport that cannot even start (a bad proxy URL, say) is retried like a failed attempt.
      this.onClosed({ reason: (error as Error).message, wasOpen: false, byUs: false, error: error as Error });
    }
  }

  /**
   * Events for one connection. What `opened` and `closed` mean depends on the role the connection
   * has by then (the loop's own, a WebSocket being tried, or one draining), so the role is looked
   * up when the event comes, never remembered from when it was made.
   */
  private eventsFor(self: () => TunnelConnection | undefined, own: Pick<ConnectionEvents, 'opened' | 'closed'>): ConnectionEvents {
    return {
      opened: () => {
        const connection = self();
        if (connection && connection === this.probe) this.promoteProbe(connection);
        else if (connection === undefined || connection === this.connection) own.opened();
      },
      closed: (disconnect) => {
        const connection = self();
        if (connection && this.draining.delete(connection)) return this.emitStatus();
        if (connection && connection === this.probe) return this.onProbeFailed(disconnect);
        if (connection === undefined || connection === this.connection) own.closed(disconnect);
      },
      served: () => {
        this.served += 1;
        this.emitStatus();
      },
      notice: (message) => this.options.onNotice?.(message),
    };
  }

  private setup(token: string): TransportSetup {
    return {
      tunnelUrl: this.options.tunnelUrl,
      relayUrl: this.options.relayUrl,
      token,
      tokens: this.options.tokens,
      userAgent: userAgent(),
      clientId: this.clientId,
      upgradeHeaders: this.options.upgradeHeaders,
      wholeFrames: this.options.wholeFrames,
      growWindows: this.options.growWindows,
      relayAgent: this.relayAgent,
      httpAgent: this.httpAgent,
      pingTimeoutMs: this.options.pingTimeoutMs,
      handshakeTimeoutMs: this.options.handshakeTimeoutMs,
      closeTimeoutMs: this.options.closeTimeoutMs,
      targets: this.targets,
    };
  }

  private onOpened(): void {
    this.openedAt = Date.now();
    // A new connection is a new link at the relay: it knows nothing of the target yet.
    this.reportTarget();
    this.authRefusals = 0;
    this.setState('connected');
    for (const waiter of this.waiters) waiter.resolve();
    this.waiters.clear();
  }

  private onClosed(disconnect: Disconnect): void {
    this.connection = undefined;
    this.lastReason = this.expiredTokenReason(disconnect) ?? disconnect.reason;
    if (this.stopping) return;
    if (this.refusedTooOften(disconnect)) return;
    if (this.shouldFallBack(disconnect)) {
      this.active = 'poll';
      this.options.onNotice?.(
        `WebSockets seem to be blocked on this network (${disconnect.reason}): using HTTP long-polling, ` +
          `and trying WebSocket again every ${describeInterval(this.options.wsRetryMs)}`,
      );
      this.scheduleProbe();
      // A different way in, not a retry of the same one: no reason to wait.
      this.backoff.reset();
      this.connect();
      return;
    }
    // Only a connection that stayed up earns a fresh start; one the relay drops at once keeps backing off.
    // A relay that says it is restarting (1012) will be back in a moment: no reason to wait longer.
    // So does one that closed a tunnel for its expired token: the source may have a fresh one by now.
    const restarting = disconnect.closeCode === RELAY_RESTART_CLOSE.code || disconnect.closeCode === TOKEN_EXPIRED_CLOSE.code;
    if (restarting || (disconnect.wasOpen && Date.now() - this.openedAt >= this.options.stableAfterMs)) this.backoff.reset();
    this.retryInMs = this.backoff.next();
    this.retryTimer = setTimeout(() => this.connect(), this.retryInMs);
    this.setState('retrying');
  }

  /**
   * Counts a refused credential; at `authFailExit` refusals in a row the bridge closes and tells
   * `onGiveUp`. Network failures in between neither count nor reset: only a tunnel that opens does.
   */
  private refusedTooOften(disconnect: Disconnect): boolean {
    if (!isCredentialRefusal(disconnect.error)) return false;
    this.authRefusals += 1;
    if (this.options.authFailExit === 0 || this.authRefusals < this.options.authFailExit) return false;
    const error = new AuthRefusedError(this.authRefusals, disconnect.reason);
    for (const waiter of this.waiters) waiter.reject(error);
    this.waiters.clear();
    void this.close().then(() => this.options.onGiveUp?.(error));
    return true;
  }

  /**
   * The relay ended or refused the tunnel over the token, and the token we have has expired: say
   * so plainly instead of repeating the relay's words (the bridge keeps trying, in case a fresh
   * token turns up).
   */
  private expiredTokenReason(disconnect: Disconnect): string | undefined {
    const expiresAt = this.options.tokens.expiresAt();
    if (expiresAt === undefined || expiresAt > Date.now()) return undefined;
    const overToken =
      disconnect.closeCode === TOKEN_EXPIRED_CLOSE.code || (disconnect.error instanceof RelayRejectedError && disconnect.error.isAuthFailure);
    if (!overToken) return undefined;
    return `your token expired at ${new Date(expiresAt).toISOString()}; run \`ctll-bridge login\` (or pass a fresh --token)`;
  }

  private shouldFallBack(disconnect: Disconnect): boolean {
    return this.active === 'ws' && this.options.fallback && suggestsBlockedWebSocket(disconnect);
  }

  private scheduleProbe(): void {
    clearTimeout(this.probeTimer);
    this.probeTimer = setTimeout(() => this.startProbe(), this.options.wsRetryMs);
    this.probeTimer.unref();
  }

  /** While polling after a fallback: try a WebSocket beside the polling connection. */
  private startProbe(): void {
    this.probeTimer = undefined;
    if (this.stopping || this.active !== 'poll' || this.probe) return;
    this.options.tokens.get().then(
      (token) => {
        if (this.stopping || this.active !== 'poll' || this.probe) return;
        let probe: TunnelConnection | undefined;
        const events = this.eventsFor(() => probe, { opened: () => undefined, closed: () => undefined });
        try {
          probe = TRANSPORTS.ws(this.setup(token), events);
          this.probe = probe;
        } catch {
          this.scheduleProbe();
        }
      },
      () => this.scheduleProbe(),
    );
  }

  private onProbeFailed(disconnect: Disconnect): void {
    this.probe = undefined;
    if (this.stopping) return;
    this.options.onNotice?.(`WebSocket still does not get through (${disconnect.reason}); staying on long-polling`);
    this.scheduleProbe();
  }

  /** A WebSocket opened while we polled: it becomes the loop's connection, and polling winds down. */
  private promoteProbe(probe: TunnelConnection): void {
    this.probe = undefined;
    const previous = this.connection;
    this.connection = probe;
    this.active = 'ws';
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (previous) {
      this.draining.add(previous);
      previous.drain();
    }
    this.backoff.reset();
    this.options.onNotice?.('WebSocket gets through again: switched back from long-polling');
    this.onOpened();
  }

  /**
   * The relay hears every change. The status line shows it while connected; while connecting or
   * retrying, what matters is the relay, and the target shows again with the next connection.
   */
  private onTargetChange(): void {
    this.reportTarget();
    if (this.state === 'connected') this.emitStatus();
  }

  /**
   * Tells the relay how the targets are doing, on the connection requests use now: the default's
   * state, and each named target the probe has answered for, all in one message (protocol's target.ts).
   */
  private reportTarget(): void {
    const message = this.targetWatch.report();
    if (message && this.connection) this.connection.sendControl(message);
  }

  private setState(state: BridgeState): void {
    this.state = state;
    this.emitStatus();
  }

  private emitStatus(): void {
    this.options.onStatus?.(this.status());
  }
}

/**
 * 401, or 403 in the relay's own JSON error: the relay read the credential and said no. A bare 403
 * may be a corporate proxy's block page, which a new token would not fix.
 */
function isCredentialRefusal(error: Error | undefined): boolean {
  if (!(error instanceof RelayRejectedError) || !error.isAuthFailure) return false;
  return error.status === 401 || error.relayCode !== undefined;
}

/** 300 000 ms is "5 min"; anything not in whole minutes reads as seconds. */
function describeInterval(ms: number): string {
  return ms >= 60_000 && ms % 60_000 === 0 ? `${ms / 60_000} min` : formatDelay(ms);
}

/** Creates a bridge and starts connecting. Throws an OptionError on bad options. */
export function startBridge(options: BridgeOptions): Bridge {
  return new Bridge(options).start();
}
