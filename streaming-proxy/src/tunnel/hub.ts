/**
 * The desktops connected to this proxy. A user may run more than one bridge (a laptop and a
 * desktop, or a restart that overlaps the old process); new requests go to the newest live link,
 * and when it leaves the next newest takes over, so two bridges never fight over one slot.
 */
import { linkInfo, type DesktopLink, type LinkInfo, type Transport } from './desktop-link';
import type { ProxyStats } from '../stats';
import type { Logger } from '../logger';
import type { Journal } from './journal';

export class TunnelHub {
  private readonly links: DesktopLink[] = [];
  /** The api-backend process each link was relayed through (RELAY_INSTANCE_HEADER), when it said. */
  private readonly relayOf = new WeakMap<DesktopLink, string>();
  private nextLinkId = 0;
  /** Told whenever a link comes or goes (the frame link tells api-backend whether a desktop is there). */
  private readonly listeners = new Set<() => void>();

  constructor(
    private readonly stats: ProxyStats,
    private readonly logger: Logger,
    private readonly journal: Journal,
  ) {}

  /** Calls `listener` after every link added or removed; returns the call that stops it. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  newLinkId(): string {
    return `t${(this.nextLinkId++).toString(36)}`;
  }

  /**
   * A new link; `keyId`: the relay key that opened it (the session audit shows which), none for a
   * token; `relay`: the api-backend process that relays it.
   */
  add(link: DesktopLink, keyId?: string, relay?: string): void {
    this.links.push(link);
    if (relay !== undefined) this.relayOf.set(link, relay);
    this.stats.touch();
    this.journal.append({ type: 'tunnel_opened', link: link.id, transport: link.transport, client: link.client, ...(keyId === undefined ? {} : { keyId }) });
    this.logger.info('desktop connected', { link: link.id, transport: link.transport, client: link.client });
    this.changed();
  }

  remove(link: DesktopLink, code: number, reason: string): void {
    const index = this.links.indexOf(link);
    if (index === -1) return;
    this.links.splice(index, 1);
    this.stats.touch();
    const { requests, bytesToDesktop, bytesFromDesktop } = link.counters;
    this.journal.append({ type: 'tunnel_closed', link: link.id, transport: link.transport, requests, bytesToDesktop, bytesFromDesktop, reason: `${code} ${reason}`.trim() });
    this.logger.info('desktop disconnected', { link: link.id, transport: link.transport, code, reason, requests });
    this.changed();
  }

  find(id: string): DesktopLink | undefined {
    return this.links.find((link) => link.id === id);
  }

  /** The link new requests go to, preferring WebSocket over polling, then the newest. */
  current(): DesktopLink | undefined {
    let best: DesktopLink | undefined;
    for (const link of this.links) {
      if (link.closed) continue;
      if (!best || rank(link.transport) >= rank(best.transport)) best = link;
    }
    return best;
  }

  /** Open links of one transport: what the per-user link limits count. */
  count(transport: Transport): number {
    return this.links.filter((link) => link.transport === transport && !link.closed).length;
  }

  transport(): Transport | null {
    return this.current()?.transport ?? null;
  }

  info(): LinkInfo[] {
    return this.links.map(linkInfo);
  }

  /**
   * Closes the WebSocket tunnels only; polling bridges come back through api-backend by themselves.
   * With `relay`, only those relayed through that api-backend process: the tunnels through the
   * other replicas do not pass through the one that restarts.
   */
  closeWebSockets(code: number, reason: string, relay?: string): number {
    const ws = this.links.filter((link) => link.transport === 'ws' && (relay === undefined || this.relayOf.get(link) === relay));
    for (const link of ws) link.close(code, reason);
    return ws.length;
  }

  closeAll(code: number, reason: string): void {
    for (const link of [...this.links]) link.close(code, reason);
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}

function rank(transport: Transport): number {
  return transport === 'ws' ? 1 : 0;
}
