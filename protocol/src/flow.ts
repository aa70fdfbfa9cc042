/**
 * Per-stream flow control, the same on both ends and both directions.
 *
 * The sender of a body starts with INITIAL_WINDOW bytes of credit for each stream and spends it
 * as it sends data frames; the receiver gives credit back (a `window` message) only once its
 * consumer has taken the bytes (an HTTP response drained, a local request written). A slow web
 * client therefore slows the desktop's reading of its local server, one stream at a time, and no
 * hop holds more than one window plus one frame per stream. Streams never block each other.
 * Bytes a hop holds are counted as memory, not just as bytes: what waits is kept in buffers of
 * its own (`detached`), never as views that keep a larger socket read alive.
 *
 * Credit is enforced, not trusted: a receiver that gets more than the window plus one frame
 * beyond what it granted back, or a sender that is granted more than it ever sent, has a peer
 * that broke the protocol. Both raise FlowControlError, and the link carrying the stream closes.
 *
 * A window may grow where both ends of a link agreed to it (stream-window.ts): the sender reports
 * `blocked` when its credit runs out with bytes waiting, and the receiver, if its consumer kept up,
 * doubles the window and grants the difference. The sender then accepts grants up to the max the
 * receiver declared, and no further.
 */
import { chunkSlices, detached, MAX_CHUNK_BYTES } from './frames';
import type { WindowBudget } from './stream-window';

export const INITIAL_WINDOW = 1024 * 1024;

/**
 * How far past its credit a sender may go: it checks its credit before each frame, and a frame
 * carries at most MAX_CHUNK_BYTES, so the last frame it sends may overshoot by up to one frame.
 */
export const MAX_OVERSHOOT_BYTES = MAX_CHUNK_BYTES;

/** The close code of a link whose peer broke flow control (WebSocket 1008, policy violation). */
export const FLOW_CONTROL_CLOSE_CODE = 1008;
export const FLOW_CONTROL_CLOSE_REASON = 'flow control violated';

/** The peer sent past its credit or granted more than was sent: the link must close. */
export class FlowControlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FlowControlError';
  }
}

/** A receiver's consumer that holds at most this share of the window has kept up. */
const KEPT_UP_SHARE = 4;

/**
 * How much a receive window grows when its sender reports `blocked`: to twice its size, or to
 * `start` if that is larger (the window the last stream on the same budget ended with: the same
 * desktop's round trip, so a new stream need not find it again by doubling), up to `max`; or 0
 * while the consumer holds more than a quarter of the window (it, not the round trip, is what
 * holds the sender back) or the window is already at its max.
 */
export function growthFor(window: number, max: number, unconsumed: number, start = 0): number {
  if (window >= max || unconsumed > window / KEPT_UP_SHARE) return 0;
  return Math.min(Math.max(window, start - window), max - window);
}

/** The sending side's credit for one stream. */
export class SendCredit {
  private available: number;
  private waiters: Array<() => void> = [];

  /** `max`: how far the receiver's grants may lift the credit (its declared window; no growth: the initial one). */
  constructor(
    private readonly initial = INITIAL_WINDOW,
    private readonly max = initial,
  ) {
    this.available = initial;
  }

  get bytes(): number {
    return this.available;
  }

  /** True while the sender may send; a frame may overshoot the credit by at most its own size. */
  get open(): boolean {
    return this.available > 0;
  }

  spend(bytes: number): void {
    this.available -= bytes;
  }

  /**
   * More credit from the receiver. An honest receiver grants back only bytes it received, and
   * grows the window no further than the max it declared, so a grant that would lift the credit
   * above that is forged (or a replay): it throws FlowControlError and leaves the credit as it was.
   */
  grant(bytes: number): void {
    if (!Number.isSafeInteger(bytes) || bytes <= 0 || this.available + bytes > this.max) {
      throw new FlowControlError(
        this.max === this.initial
          ? `granted ${bytes} bytes, but only ${this.initial - this.available} were sent and not yet granted back`
          : `granted ${bytes} bytes, which would lift the credit past the receiver's ${this.max}-byte window`,
      );
    }
    this.available += bytes;
    if (this.available > 0 && this.waiters.length > 0) {
      const waiters = this.waiters;
      this.waiters = [];
      for (const wake of waiters) wake();
    }
  }

  /** Calls `wake` once credit is available again (immediately if it already is). */
  whenOpen(wake: () => void): void {
    if (this.open) wake();
    else this.waiters.push(wake);
  }

  /** Drops pending waiters, e.g. when the stream is cancelled. */
  clear(): void {
    this.waiters = [];
  }
}

/** A receive window that may grow: up to `max`, paid from the link's budget. */
export interface Growth {
  max: number;
  budget: WindowBudget;
}

/** A sender towards a receiver that grows its windows: how far (its declared max), and how to tell it we are blocked. */
export interface SendGrowth {
  max: number;
  sendBlocked: () => void;
}

/**
 * The receiving side of one stream: counts what arrived against what was granted back, and gives
 * credit back in batches (half a window) so a stream of small chunks does not answer each with a
 * message of its own.
 */
export class ReceiveCredit {
  private consumedSinceGrant = 0;
  /** Bytes received and not yet granted back: the sender's spent credit, as far as we know. */
  private outstanding = 0;
  private window: number;
  /** What the window grew by, taken from the budget and given back by `release`. */
  private grown = 0;
  /** The sender said `blocked` and has sent nothing since (it cannot, until a grant reaches it). */
  private senderBlocked = false;

  constructor(
    private readonly grant: (bytes: number) => void,
    initial = INITIAL_WINDOW,
    private readonly growth?: Growth,
  ) {
    this.window = initial;
  }

  /** Bytes the peer sent and not yet granted back. */
  get held(): number {
    return this.outstanding;
  }

  /** The stream's window now (it grows only on `blocked`). */
  get size(): number {
    return this.window;
  }

  /**
   * The sender ran out of credit with bytes waiting. If our consumer keeps up (now, or by the time
   * it has taken what arrived, while the sender still waits), the round trip is what holds the
   * sender back: the window doubles (within its max and the link's budget) and the sender gets the
   * difference at once. A consumer that holds the bytes never lets it grow. A receiver that does
   * not grow windows ignores `blocked`.
   */
  blocked(): void {
    if (!this.growth) return;
    this.senderBlocked = true;
    this.grow();
  }

  private grow(): void {
    const unconsumed = this.outstanding - this.consumedSinceGrant;
    const { budget, max } = this.growth!;
    const more = budget.take(growthFor(this.window, max, unconsumed, budget.lastWindow));
    if (more === 0) return;
    this.senderBlocked = false;
    this.window += more;
    this.grown += more;
    this.grant(more);
  }

  /** The stream is over: its growth goes back to the link's budget, which notes the window it reached. */
  release(): void {
    if (this.grown === 0) return;
    this.growth?.budget.give(this.grown, this.window);
    this.grown = 0;
  }

  /** A data frame arrived; throws FlowControlError if the sender went past its credit. */
  received(bytes: number): void {
    if (this.outstanding + bytes > this.window + MAX_OVERSHOOT_BYTES) {
      throw new FlowControlError(
        `received ${this.outstanding + bytes} bytes on a ${this.window}-byte window (at most one ${MAX_OVERSHOOT_BYTES}-byte frame over)`,
      );
    }
    this.outstanding += bytes;
    // Data after `blocked`: a grant reached the sender, which is no longer waiting.
    this.senderBlocked = false;
  }

  consumed(bytes: number): void {
    this.consumedSinceGrant += bytes;
    if (this.consumedSinceGrant >= this.window / 2) {
      const bytesToGrant = this.consumedSinceGrant;
      this.consumedSinceGrant = 0;
      this.outstanding = Math.max(0, this.outstanding - bytesToGrant);
      this.grant(bytesToGrant);
    }
    if (this.senderBlocked) this.grow();
  }
}

/**
 * One stream body's sending side: splits each chunk into frames and sends a frame only while
 * credit lasts, so the receiver never sees more than the window plus one frame. Frames that find
 * no credit wait here until a grant lets them go (a caller that heeds `write`'s false leaves at
 * most one chunk; one that forwards on its own credit, like a proxy's CreditHop, up to that
 * credit); the end of the body waits behind them.
 */
export class BodySender {
  private readonly credit: SendCredit;
  private backlog: Buffer[] = [];
  private pendingEnd: (() => void) | undefined;
  private waiters: Array<() => void> = [];
  private flushedWaiters: Array<() => void> = [];
  /** `blocked` was reported and no grant has come since: said once per stall. */
  private saidBlocked = false;

  constructor(
    private readonly sendFrame: (payload: Buffer) => void,
    initial = INITIAL_WINDOW,
    /** Where the receiver grows windows. */
    private readonly growing?: SendGrowth,
  ) {
    this.credit = new SendCredit(initial, growing?.max ?? initial);
  }

  /** True while the caller may write more at once. */
  get ready(): boolean {
    return this.backlog.length === 0 && this.credit.open;
  }

  /** Sends what credit allows; false means: write no more until `whenReady` calls back. */
  write(chunk: Buffer): boolean {
    // Written while frames already wait, it will wait too: held as its own bytes (see `detached`).
    if (!this.ready) chunk = detached(chunk);
    for (const slice of chunkSlices(chunk)) this.backlog.push(slice);
    this.flush();
    return this.ready;
  }

  whenReady(wake: () => void): void {
    if (this.ready) wake();
    else this.waiters.push(wake);
  }

  /** Calls `sendEnd` once every frame before it has gone out. */
  end(sendEnd: () => void): void {
    if (this.backlog.length === 0) sendEnd();
    else this.pendingEnd = sendEnd;
  }

  /** Calls `done` once no frame waits for credit (at once if none does). */
  whenFlushed(done: () => void): void {
    if (this.backlog.length === 0) done();
    else this.flushedWaiters.push(done);
  }

  /** Credit from the receiver; throws FlowControlError for a forged grant. */
  grant(bytes: number): void {
    this.credit.grant(bytes);
    this.saidBlocked = false;
    this.flush();
    if (this.ready && this.waiters.length > 0) {
      const waiters = this.waiters;
      this.waiters = [];
      for (const wake of waiters) wake();
    }
  }

  /** Drops whatever waits: the stream is over. */
  clear(): void {
    this.backlog = [];
    this.pendingEnd = undefined;
    this.waiters = [];
    this.flushedWaiters = [];
    this.credit.clear();
  }

  private flush(): void {
    while (this.backlog.length > 0 && this.credit.open) {
      const slice = this.backlog.shift()!;
      this.credit.spend(slice.byteLength);
      this.sendFrame(slice);
    }
    // Out of credit, with bytes waiting or (a writer that heeds `write`'s false) about to be.
    if (!this.credit.open && this.growing && !this.saidBlocked) {
      this.saidBlocked = true;
      this.growing.sendBlocked();
    }
    if (this.backlog.length > 0) return;
    if (this.pendingEnd) {
      const sendEnd = this.pendingEnd;
      this.pendingEnd = undefined;
      sendEnd();
    }
    if (this.flushedWaiters.length > 0) {
      const flushed = this.flushedWaiters;
      this.flushedWaiters = [];
      for (const done of flushed) done();
    }
  }
}
