/**
 * Growing windows on a polling link (protocol/src/stream-window.ts). On this transport the proxy
 * gives a stream's request-body credit back itself, as a poll carries the bytes away. A stream
 * that said `blocked` before that poll came was held back by its window, not by the bridge (which
 * polls only while it keeps up with what it was given), so the credit given back with that poll
 * includes a doubling of the stream's window (or a jump to the window the last stream that grew
 * ended with, when that is more), up to what the bridge takes of one stream in one answer and
 * within the proxy's budget. A stream's growth goes back to the budget when its body ends or is
 * cancelled, and all of it when the link closes.
 */
import { growthFor, INITIAL_WINDOW, type WindowBudget } from '@ctll/protocol';

export class PollWindows {
  private readonly blocked = new Set<string>();
  /** Streams whose window grew: their window now. */
  private readonly grown = new Map<string, number>();

  constructor(
    /** The most of one stream a poll answer may hold (what the registration agreed). */
    private readonly max: number,
    private readonly budget: WindowBudget,
  ) {}

  /** The stream's sender ran out of credit: the next poll that carries its bytes may grow its window. */
  blockedOn(stream: string): void {
    this.blocked.add(stream);
  }

  /** Credit to give back for `delivered` bytes of `stream` a poll took: those, plus its window's growth if it was blocked. */
  credit(stream: string, delivered: number): number {
    if (!this.blocked.delete(stream)) return delivered;
    const window = this.grown.get(stream) ?? INITIAL_WINDOW;
    // The bridge is polling, so it took what it was given: nothing it holds counts against growth.
    const more = this.budget.take(growthFor(window, this.max, 0, this.budget.lastWindow));
    if (more > 0) this.grown.set(stream, window + more);
    return delivered + more;
  }

  /** The stream's body is over (ended or cancelled): its growth goes back to the budget. */
  ended(stream: string): void {
    this.blocked.delete(stream);
    const window = this.grown.get(stream);
    if (window === undefined) return;
    this.grown.delete(stream);
    this.budget.give(window - INITIAL_WINDOW, window);
  }

  /** The link closed: every stream's growth goes back. */
  close(): void {
    for (const stream of [...this.grown.keys()]) this.ended(stream);
    this.blocked.clear();
  }
}
