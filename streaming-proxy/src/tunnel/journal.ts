/**
 * The proxy's session journal: one event when a desktop connects and one when it leaves, with the
 * counts of its session. api-backend pulls it (`GET /events?after=<seq>`) into the audit trail, so
 * the data plane never writes to a database and never learns where the audit lives. The journal is
 * a bounded ring: if nobody pulls for long, the oldest events go and `dropped` says how many.
 */
import type { JournalEvent, TunnelClosed, TunnelOpened } from '@ctll/protocol';

type NewEvent = Omit<TunnelOpened, 'seq' | 'at'> | Omit<TunnelClosed, 'seq' | 'at'>;

export class Journal {
  private readonly events: JournalEvent[] = [];
  private nextSeq = 1;
  dropped = 0;

  constructor(private readonly capacity = 4096) {}

  append(event: NewEvent): void {
    this.events.push({ ...event, seq: this.nextSeq++, at: new Date().toISOString() } as JournalEvent);
    if (this.events.length > this.capacity) {
      this.events.shift();
      this.dropped += 1;
    }
  }

  /** Events with a sequence number above `after`, oldest first. */
  since(after: number, limit = 1000): JournalEvent[] {
    const start = this.events.findIndex((event) => event.seq > after);
    return start === -1 ? [] : this.events.slice(start, start + limit);
  }

  get lastSeq(): number {
    return this.nextSeq - 1;
  }
}
