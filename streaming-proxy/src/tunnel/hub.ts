/**
 * The desktops connected to this proxy. A user may run more than one bridge (a laptop and a
 * desktop, or a restart that overlaps the old process); new requests go to the newest live link,
 * and when it leaves the next newest takes over, so two bridges never fight over one slot.
 */
import type { DesktopLink, LinkInfo, Transport } from './desktop-link';
import type { ProxyStats } from '../stats';
import type { Logger } from '../logger';

export class TunnelHub {
  private readonly links: DesktopLink[] = [];
  private nextLinkId = 0;

  constructor(
    private readonly stats: ProxyStats,
    private readonly logger: Logger,
  ) {}

  newLinkId(): string {
    return `t${(this.nextLinkId++).toString(36)}`;
  }

  add(link: DesktopLink): void {
    this.links.push(link);
    this.stats.touch();
    this.logger.info('desktop connected', { link: link.id, transport: link.transport, client: link.client });
  }

  remove(link: DesktopLink, code: number, reason: string): void {
    const index = this.links.indexOf(link);
    if (index === -1) return;
    this.links.splice(index, 1);
    this.stats.touch();
    this.logger.info('desktop disconnected', { link: link.id, transport: link.transport, code, reason });
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

  get connected(): number {
    return this.links.length;
  }

  transport(): Transport | null {
    return this.current()?.transport ?? null;
  }

  info(): LinkInfo[] {
    return this.links.map((link) => link.info());
  }

  closeAll(code: number, reason: string): void {
    for (const link of [...this.links]) link.close(code, reason);
  }
}

function rank(transport: Transport): number {
  return transport === 'ws' ? 1 : 0;
}
