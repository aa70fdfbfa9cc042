/**
 * A WebSocket tunnel's round trip, timed from the proxy's liveness pings: each ping carries a
 * sequence number, and only the pong that echoes the latest one counts, so an unsolicited pong
 * (RFC 6455 allows them) or a late answer to an older ping never passes for a fast one.
 */
import type { TunnelRtt } from '@ctll/protocol';

/** Samples in the moving mean: a few ping intervals, so one slow pong shows without dominating. */
const WINDOW = 5;

export class RoundTrip {
  private seq = 0;
  private pending: { seq: number; at: number } | undefined;
  private readonly samples: number[] = [];

  /** The payload for the next ping; its pong is timed from now. */
  ping(now = performance.now()): Buffer {
    this.seq += 1;
    this.pending = { seq: this.seq, at: now };
    const payload = Buffer.alloc(4);
    payload.writeUInt32BE(this.seq);
    return payload;
  }

  pong(payload: Buffer, now = performance.now()): void {
    if (!this.pending || payload.length !== 4 || payload.readUInt32BE(0) !== this.pending.seq) return;
    this.samples.push(now - this.pending.at);
    if (this.samples.length > WINDOW) this.samples.shift();
    this.pending = undefined;
  }

  /** undefined until the first pong. */
  snapshot(): TunnelRtt | undefined {
    if (this.samples.length === 0) return undefined;
    const mean = this.samples.reduce((sum, ms) => sum + ms, 0) / this.samples.length;
    return { latestMs: round(this.samples[this.samples.length - 1]), averageMs: round(mean), samples: this.samples.length };
  }
}

/** Tenths of a millisecond: finer is noise, coarser hides a loopback tunnel. */
function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
