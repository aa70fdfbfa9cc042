/**
 * Windows that grow, on the desktop's tunnel (both transports).
 *
 * A stream's window is fixed at INITIAL_WINDOW unless both ends of its link said, on the upgrade,
 * that they grow windows: the bridge sends STREAM_WINDOW_HEADER with the largest window it will
 * grow its own receive windows to, and a proxy that grows them too answers the 101 with its own.
 * Between two such ends a sender whose credit runs out while bytes wait says so once (a `blocked`
 * message), and the receiver doubles that stream's window (granting the difference at once) when
 * its consumer has taken nearly all it was sent: the round trip, not the consumer, held the sender
 * back. A stream's first growth goes straight to the window the last stream that grew ended with,
 * if that is more than double (a new stream crosses the same round trip). A receiver whose
 * consumer holds the bytes does not grow, so a stalled caller still costs one window, and a
 * window never passes the max its receiver declared (the sender enforces that bound on grants).
 * Growth is paid from a budget (WindowBudget; the bridge keeps one per link, a proxy one for all
 * its user's links): however many streams run fast, their grown windows hold at most that much
 * more. A stream gives its growth back to the budget when it ends.
 *
 * Why only on the desktop's tunnel: over the internet a fixed 1 MiB window moves at most about
 * 1 MiB per round trip (14 MiB/s at 60 ms); api-backend's link to a proxy is loopback or a host
 * network, where the fixed window is never the bound. A peer that sends no header (an older
 * bridge or proxy) never sees a `blocked` message or a grown window.
 *
 * On the long-poll transport the proxy gives a stream's request-body credit back itself, when a
 * poll carries the bytes away, so a poll answer holds at most one window of any stream. There the
 * bridge declares `window` in its registration (the most of one stream an answer may hold) and a
 * proxy that grows windows answers with the most it will put in one (at most POLL_STREAM_WINDOW):
 * a stream still blocked when a poll comes had its window, not the bridge, hold it back, and the
 * proxy doubles that stream's window as it delivers. The bridge bounds what it holds by pausing
 * its polls (MAX_UNTAKEN_BYTES), as before. Answers (the bridge's POSTs) are paced by TCP.
 */
import { z } from 'zod';
import { INITIAL_WINDOW, type Growth, type SendGrowth } from './flow';

/** Bridge → relay on the upgrade, relay → bridge on the 101: "this side grows windows up to N bytes". */
export const STREAM_WINDOW_HEADER = 'ctll-stream-window';

/** How far our ends grow a stream's receive window: 16 MiB moves about 260 MiB/s at 60 ms. */
export const MAX_STREAM_WINDOW = 16 * 1024 * 1024;

/**
 * The most of one stream a poll answer holds where windows grow, and a whole answer's bound
 * (poll-link.ts). One answer comes per round trip, so this bounds a polling stream's upload over a
 * long link; 16 MiB moved more still, but grew the proxy by up to 63 MiB in a loopback upload.
 */
export const POLL_STREAM_WINDOW = 8 * 1024 * 1024;

/** How much the streams sharing a budget (one link's, or one proxy's) may grow their windows by, together. */
export const WINDOW_GROWTH_BUDGET = 64 * 1024 * 1024;

/** The most a peer may declare: past this, a declaration is not one of ours. */
export const LARGEST_DECLARED_WINDOW = 1024 * 1024 * 1024;

/** A window one end declares (header or registration): a whole number of bytes from INITIAL_WINDOW to 1 GiB. */
export const declaredWindowSchema = z.number().int().min(INITIAL_WINDOW).max(LARGEST_DECLARED_WINDOW);

/**
 * The largest window the other end declared in STREAM_WINDOW_HEADER, or undefined when it sent
 * none, a repeated one, or one that declaredWindowSchema refuses (then the link keeps fixed windows).
 */
export function declaredWindow(header: string | string[] | undefined): number | undefined {
  if (typeof header !== 'string' || !/^\d{1,10}$/.test(header.trim())) return undefined;
  const parsed = declaredWindowSchema.safeParse(Number(header.trim()));
  return parsed.success ? parsed.data : undefined;
}

/**
 * The growth a set of streams shares (WINDOW_GROWTH_BUDGET), and the window the last of them that
 * grew ended with: the streams of one budget cross the same desktop's link, so a new stream's first
 * growth jumps to that window instead of doubling its way there one round trip at a time.
 */
export class WindowBudget {
  private left: number;
  private reached = INITIAL_WINDOW;

  constructor(readonly bytes = WINDOW_GROWTH_BUDGET) {
    this.left = bytes;
  }

  get available(): number {
    return this.left;
  }

  /** Takes up to `wanted` bytes of growth; returns what it took (0 once the budget is spent). */
  take(wanted: number): number {
    const taken = Math.max(0, Math.min(wanted, this.left));
    this.left -= taken;
    return taken;
  }

  /** The window the last stream that grew ended with (INITIAL_WINDOW until one has). */
  get lastWindow(): number {
    return this.reached;
  }

  /** Gives back a stream's growth; `reached`, the window it grew to, is where the next stream's growth starts. */
  give(bytes: number, reached?: number): void {
    this.left = Math.min(this.bytes, this.left + bytes);
    if (reached !== undefined) this.reached = reached;
  }
}

/** What both ends of a link agreed on; undefined when either end keeps fixed windows. */
export interface GrowingWindows {
  /** How far our receive windows grow (what we declared). */
  own: number;
  /** How far the peer's receive windows grow, so how far its grants may lift our credit. */
  peer: number;
  budget: WindowBudget;
}

/**
 * Windows for a link whose peer declared `peerHeader` (we declared MAX_STREAM_WINDOW), growing
 * within `budget` (by default one of the link's own).
 */
export function growingWindows(peerHeader: string | string[] | undefined, budget = new WindowBudget()): GrowingWindows | undefined {
  const peer = declaredWindow(peerHeader);
  return peer === undefined ? undefined : { own: MAX_STREAM_WINDOW, peer, budget };
}

/** A BodySender's growth towards a peer that grows its windows; undefined (fixed windows) without `windows`. */
export function sendGrowth(windows: GrowingWindows | undefined, sendBlocked: () => void): SendGrowth | undefined {
  return windows && { max: windows.peer, sendBlocked };
}

/** A ReceiveCredit's growth for our own windows; undefined (fixed windows) without `windows`. */
export function receiveGrowth(windows: GrowingWindows | undefined): Growth | undefined {
  return windows && { max: windows.own, budget: windows.budget };
}
