/**
 * At most `limit` proxy starts at a time in this api-backend; the others wait their turn, first
 * come first served. A start's own clock (PROXY_START_TIMEOUT_MS) begins with its turn, so a burst
 * queues instead of every start of it sharing the engine at once and all of them missing the
 * deadline together (bench/RESULTS.md 6.1: twenty swarm starts at once on one node).
 */
export class StartGate {
  private running = 0;
  private readonly queue: Array<() => void> = [];

  constructor(readonly limit: number) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.running < this.limit) this.running += 1;
    else await new Promise<void>((resolve) => this.queue.push(resolve));
    try {
      return await work();
    } finally {
      // The place passes straight to the next in line, so no newcomer can take it first.
      const next = this.queue.shift();
      if (next) next();
      else this.running -= 1;
    }
  }

  /** Starts waiting for their turn now. */
  get waiting(): number {
    return this.queue.length;
  }
}
