/**
 * Bytes handed to a Node writable (a web client's answer, a request to the local server, a zrok
 * share's socket) count as taken only once the writable took them: at once when `write` went
 * through, or, once it buffered, together on its next 'drain'. Whoever grants credit back on
 * `taken` so follows the slowest reader, and nobody buffers more than the window it granted.
 *
 * While bytes wait for 'drain', a chunk written after them waits too, so it goes in as bytes of
 * its own (`detached`): a window of views would keep a window of larger socket reads alive.
 */
import type { Writable } from 'node:stream';
import { detached } from './frames';

export class DrainCredit {
  private pending = 0;

  /** `taken` is called with bytes the writable took; it decides whether a finished stream still grants them. */
  constructor(private readonly taken: (bytes: number) => void) {}

  /** Bytes written and not yet taken: the writable's reader is behind. */
  get waiting(): number {
    return this.pending;
  }

  write(target: Writable, chunk: Buffer): void {
    if (this.pending > 0) {
      target.write(detached(chunk));
    } else if (target.write(chunk)) {
      this.taken(chunk.byteLength);
      return;
    } else {
      target.once('drain', () => {
        const bytes = this.pending;
        this.pending = 0;
        this.taken(bytes);
      });
    }
    this.pending += chunk.byteLength;
  }
}
