/**
 * Tunnel facts come out of the data plane by pull. Each streaming-proxy journals its desktops
 * connecting and leaving, with each connection's request and byte counts
 * (streaming-proxy/src/tunnel/journal.ts, GET /events?after=<seq>); this collector reads the
 * journals and hands what it finds to the audit writer, and reads a proxy once more right before
 * the manager removes it. So no request ever causes a database write, and the proxy never learns
 * where the audit lives.
 *
 * Only proxies with something to tell are read every `intervalMs`: one api-backend saw activity for
 * (touch(): a request, a tunnel opening or closing, a start), for a few rounds after it, and one
 * whose last read found events (its journal is moving). Every other proxy is read every
 * `idleIntervalMs`, the net for what api-backend cannot see (a long-poll desktop timing out inside
 * its proxy). With no activity anywhere a round does nothing, not even list the proxies. Reads run
 * at most `concurrency` at once; a proxy that fails is logged (owner hash), counted, and tried
 * again later, and never holds up the others.
 *
 * The position (`after`) is kept per proxy instance, in memory only: after a restart each journal
 * is read from the start again, which the idempotent upserts make harmless. Pulls of one proxy are
 * serialised, so a tick and a stop never read the same events twice. Desktops still connected when
 * their proxy is removed are closed here as cut by the stop, with their counts when the proxy
 * reports them per connection (null, "unknown", when it does not).
 */
import type { Logger } from '../logger';
import type { ProxyDriver, ProxyHandle, StopReason } from '../proxy/driver';
import { KeyedLock } from '../proxy/keyed-lock';
import { mapLimit } from '../proxy/map-limit';
import type { JournalEvent, ProxyClient } from '../proxy/proxy-client';
import type { AuditRecord, ProxyInstance } from './records';

export interface CollectorOptions {
  /** How often proxies with recent activity are read. */
  intervalMs: number;
  /** How often every running proxy is read, activity or not. */
  idleIntervalMs: number;
  /** Longest wait for one proxy's answer; a proxy that does not answer is tried again next round. */
  requestTimeoutMs: number;
  /** Proxies read at once in one round. */
  concurrency: number;
}

export const COLLECTOR_DEFAULTS: Readonly<CollectorOptions> = Object.freeze({
  intervalMs: 3_000,
  idleIntervalMs: 60_000,
  requestTimeoutMs: 2_000,
  concurrency: 8,
});

/** The journal holds 4096 events and answers 1000 per page: five pages always reach its end. */
const MAX_PAGES_PER_PULL = 8;
/** After activity, a proxy is read this many rounds: its journal may lag the request that touched it. */
const HOT_ROUNDS = 5;

export interface CollectorHooks {
  /** One proxy could not be read in a round. */
  onPullFailed?(): void;
}

interface Cursor {
  after: number;
  /** The journal's own count of events it dropped unread, as last seen. */
  dropped: number;
  /** Drained for removal: later rounds leave it alone until it is gone from the driver's list. */
  removed: boolean;
  /** The last read found events: read it again next round. */
  moving?: boolean;
  /** The last read failed (logged once per run of failures). */
  failing?: boolean;
}

export class TunnelCollector {
  private readonly options: CollectorOptions;
  private readonly cursors = new Map<string, Cursor>();
  private readonly lock = new KeyedLock();
  /** Owner hash -> how many more rounds its proxy is read, activity or not. */
  private readonly hot = new Map<string, number>();
  private lastFullRound = 0;
  private timer?: NodeJS.Timeout;
  private round?: Promise<void>;

  constructor(
    private readonly driver: ProxyDriver,
    private readonly client: ProxyClient,
    private readonly record: (record: AuditRecord) => void,
    options: Partial<CollectorOptions>,
    private readonly logger: Logger,
    private readonly hooks: CollectorHooks = {},
  ) {
    this.options = { ...COLLECTOR_DEFAULTS, ...options };
  }

  start(): this {
    this.timer = setInterval(() => void this.pullDue(), this.options.intervalMs);
    this.timer.unref();
    return this;
  }

  /** api-backend saw activity for this owner's proxy: read it for the next few rounds. */
  touch(ownerHash: string): void {
    // Counted in rounds, not time: on a busy machine a round can outlast the interval, and the
    // journal may only hold the event (a desktop's close) a moment after we heard of it.
    this.hot.set(ownerHash, HOT_ROUNDS);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** One round over the proxies that are due; a round still running when the next is due is not doubled. */
  pullDue(): Promise<void> {
    this.round ??= this.runRound(false).finally(() => {
      this.round = undefined;
    });
    return this.round;
  }

  /** One round over every running proxy, due or not. */
  async pullAll(): Promise<void> {
    await this.round;
    this.round = this.runRound(true).finally(() => {
      this.round = undefined;
    });
    return this.round;
  }

  /** Right before a proxy is removed: everything it journaled, then its desktops as cut by the stop. */
  drain(handle: ProxyHandle, reason: StopReason): Promise<void> {
    const key = keyOf(handle);
    return this.lock.run(key, async () => {
      const endpoint = handle.endpoint;
      if (!endpoint) return;
      await this.pullLocked(handle).catch((error: Error) =>
        this.logger.warn('StreamingProxy journal unreadable before removal', { owner: handle.ownerHash, error: error.message }),
      );
      const status = await this.client.status(endpoint, this.options.requestTimeoutMs).catch(() => undefined);
      const instance = instanceOf(handle);
      const at = new Date().toISOString();
      for (const desktop of status?.desktops ?? []) {
        // Only tunnel connections are sessions here; a zrok share listed beside them is not one.
        const transport = desktop.transport;
        if (!isTransport(transport) || typeof desktop.id !== 'string') continue;
        // Its opening may have fallen out of the journal; the status still knows it.
        if (isTime(desktop.connectedAt)) {
          this.record({ type: 'tunnel_opened', ...instance, link: desktop.id, transport, client: String(desktop.client), at: desktop.connectedAt });
        }
        this.record({
          type: 'tunnel_closed',
          ...instance,
          link: desktop.id,
          transport,
          at,
          requests: countOrNull(desktop.requests),
          bytesToDesktop: countOrNull(desktop.bytesToDesktop),
          bytesFromDesktop: countOrNull(desktop.bytesFromDesktop),
          reason: `proxy stopped (${reason})`,
        });
      }
      this.cursors.set(key, { ...(this.cursors.get(key) ?? { after: 0, dropped: 0 }), removed: true });
    });
  }

  private async runRound(forceFull: boolean): Promise<void> {
    const now = Date.now();
    const full = forceFull || now - this.lastFullRound >= this.options.idleIntervalMs;
    const moving = [...this.cursors.values()].some((cursor) => cursor.moving);
    if (!full && this.hot.size === 0 && !moving) return;
    let handles: ProxyHandle[];
    try {
      handles = (await this.driver.list()).filter((handle) => handle.state === 'running' && handle.endpoint);
    } catch (error) {
      this.logger.warn('audit collector cannot list proxies', { error: (error as Error).message });
      return;
    }
    if (full) this.lastFullRound = now;
    const live = new Set(handles.map(keyOf));
    for (const key of this.cursors.keys()) if (!live.has(key)) this.cursors.delete(key);
    const due = full ? handles : handles.filter((handle) => this.hot.has(handle.ownerHash) || this.cursors.get(keyOf(handle))?.moving !== false);
    for (const [owner, rounds] of this.hot) {
      if (rounds <= 1) this.hot.delete(owner);
      else this.hot.set(owner, rounds - 1);
    }
    await mapLimit(due, this.options.concurrency, (handle) => this.lock.run(keyOf(handle), () => this.pullOne(handle)));
  }

  /** One proxy's read in a round: its failure is its own. */
  private async pullOne(handle: ProxyHandle): Promise<void> {
    const cursor = this.cursors.get(keyOf(handle));
    try {
      await this.pullLocked(handle);
      if (cursor?.failing) this.logger.info('StreamingProxy journal readable again', { owner: handle.ownerHash });
      if (cursor) cursor.failing = false;
    } catch (error) {
      this.hooks.onPullFailed?.();
      const current = this.cursors.get(keyOf(handle));
      const details = { owner: handle.ownerHash, error: (error as Error).message };
      if (current?.failing) this.logger.debug('StreamingProxy journal still unreadable', details);
      else this.logger.warn('StreamingProxy journal unreadable; the other proxies are read as usual', details);
      if (current) {
        current.failing = true;
        current.moving = false;
      }
    }
  }

  private async pullLocked(handle: ProxyHandle): Promise<void> {
    const key = keyOf(handle);
    const cursor = this.cursors.get(key) ?? { after: 0, dropped: 0, removed: false };
    if (cursor.removed || !handle.endpoint) return;
    this.cursors.set(key, cursor);
    const instance = instanceOf(handle);
    const before = cursor.after;
    cursor.moving = false;
    for (let page = 0; page < MAX_PAGES_PER_PULL; page++) {
      const journal = await this.client.events(handle.endpoint, cursor.after, this.options.requestTimeoutMs);
      if (journal.dropped > cursor.dropped) {
        this.logger.warn('StreamingProxy journal overflowed before it was read; some tunnel sessions are incomplete', {
          owner: handle.ownerHash,
          lost: journal.dropped - cursor.dropped,
        });
        cursor.dropped = journal.dropped;
      }
      for (const event of journal.events) {
        const record = toRecord(instance, event);
        if (record) this.record(record);
        else this.logger.warn('StreamingProxy journal event ignored: not one we know', { owner: handle.ownerHash });
        if (isCount(event?.seq)) cursor.after = Math.max(cursor.after, event.seq);
      }
      cursor.moving = cursor.after > before;
      if (journal.events.length === 0 || cursor.after >= journal.lastSeq) return;
    }
  }
}

function keyOf(handle: ProxyHandle): string {
  return `${handle.ownerHash}/${handle.id}/${handle.createdAt.getTime()}`;
}

function instanceOf(handle: ProxyHandle): ProxyInstance {
  return { ownerHash: handle.ownerHash, proxyId: handle.id, proxyStartedAt: handle.createdAt.toISOString() };
}

/** The journal comes from another process: its events are checked before they become rows. */
function toRecord(instance: ProxyInstance, event: JournalEvent): AuditRecord | undefined {
  if (typeof event !== 'object' || event === null || !isTime(event.at) || typeof event.link !== 'string' || !isTransport(event.transport)) return undefined;
  if (event.type === 'tunnel_opened' && typeof event.client === 'string') {
    return { type: 'tunnel_opened', ...instance, link: event.link, transport: event.transport, client: event.client, at: event.at, keyId: event.keyId };
  }
  if (event.type === 'tunnel_closed' && isCount(event.requests) && isCount(event.bytesToDesktop) && isCount(event.bytesFromDesktop)) {
    return {
      type: 'tunnel_closed',
      ...instance,
      link: event.link,
      transport: event.transport,
      at: event.at,
      requests: event.requests,
      bytesToDesktop: event.bytesToDesktop,
      bytesFromDesktop: event.bytesFromDesktop,
      reason: typeof event.reason === 'string' ? event.reason : '',
    };
  }
  return undefined;
}

const isTime = (value: unknown): value is string => typeof value === 'string' && !Number.isNaN(Date.parse(value));
const isTransport = (value: unknown): value is 'ws' | 'poll' => value === 'ws' || value === 'poll';
const isCount = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
const countOrNull = (value: unknown): number | null => (isCount(value) ? value : null);
