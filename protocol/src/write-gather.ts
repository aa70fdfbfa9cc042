/**
 * Gathers the messages a process writes to one WebSocket in one turn of its event loop into one
 * socket write. Under load a relay process reads many requests or answers in one turn, and each
 * message written at once would be a system call and a loopback packet of its own: the largest
 * single share of api-backend's CPU per small request in the profiles (bench/RESULTS.md). The
 * socket is corked at the turn's first message and uncorked once the turn's I/O callbacks ran
 * (setImmediate), so nothing waits past the turn it was written in; a lone message's turn ends
 * right after it. ws corks and uncorks around its own two-part frames; corks nest, so that is kept.
 */

/** The part of a net.Socket (a Writable) this needs. */
export interface Corkable {
  cork(): void;
  uncork(): void;
}

export class WriteGather {
  private holding = false;

  /** Without a socket every message stays a write of its own. */
  constructor(private readonly socket: Corkable | undefined) {}

  /** Call right before each message is written. */
  hold(): void {
    if (this.holding || !this.socket) return;
    this.holding = true;
    this.socket.cork();
    setImmediate(this.release);
  }

  private readonly release = (): void => {
    this.holding = false;
    this.socket?.uncork();
  };
}
