/**
 * Keeps watch over one frame link (proxy-link.ts). A link that goes quiet without closing (a proxy
 * frozen, a half-open TCP connection) would keep taking requests that can never be answered, so
 * it is pinged (a WebSocket ping, which ws answers by itself on the proxy); a link that sent
 * nothing, not even a pong, for a whole interval after a ping is declared dead, so its streams
 * fail at once and the next request dials anew. A dead link is noticed within two intervals.
 */
import type WebSocket from 'ws';

/** How often a link is pinged. */
export const LINK_PING_INTERVAL_MS = 15_000;

export class LinkKeepalive {
  /** Whether anything (a pong or any message) came since the last ping. */
  private heardSincePing = true;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly ws: WebSocket,
    intervalMs: number,
    private readonly onDead: () => void,
  ) {
    ws.on('pong', () => this.heard());
    this.timer = setInterval(() => this.tick(), intervalMs).unref();
  }

  /** The proxy said something: a pong may queue behind a long answer's frames, so any message counts. */
  heard(): void {
    this.heardSincePing = true;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private tick(): void {
    if (!this.heardSincePing) {
      this.stop();
      this.onDead();
      return;
    }
    this.heardSincePing = false;
    this.ws.ping();
  }
}
