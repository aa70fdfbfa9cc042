/**
 * The proxy's session journal (tunnel/journal.ts), which api-backend pages through with
 * `GET /events?after=<seq>` into the audit trail: no event may be skipped or repeated, and a
 * journal nobody reads stays bounded and says how much it lost.
 */
import { Journal } from '../src/tunnel/journal';

function opened(journal: Journal, link: string): void {
  journal.append({ type: 'tunnel_opened', link, transport: 'ws', client: 'test' });
}

it('numbers events from 1 in the order they happened, with when', () => {
  const journal = new Journal();
  expect(journal.lastSeq).toBe(0);
  expect(journal.since(0)).toEqual([]);
  opened(journal, 't0');
  journal.append({ type: 'tunnel_closed', link: 't0', transport: 'ws', requests: 3, bytesToDesktop: 10, bytesFromDesktop: 20, reason: '1000 bye' });
  const events = journal.since(0);
  expect(events.map((event) => [event.seq, event.type, event.link])).toEqual([
    [1, 'tunnel_opened', 't0'],
    [2, 'tunnel_closed', 't0'],
  ]);
  expect(events[1]).toMatchObject({ requests: 3, bytesToDesktop: 10, bytesFromDesktop: 20, reason: '1000 bye' });
  expect(Number.isNaN(Date.parse(events[0].at))).toBe(false);
  expect(journal.lastSeq).toBe(2);
});

it('pages without skipping or repeating an event: each page starts after the last sequence read', () => {
  const journal = new Journal();
  for (let i = 0; i < 25; i++) opened(journal, `t${i}`);
  const read: number[] = [];
  let after = 0;
  // Bounded, so a journal that repeats itself fails here instead of looping.
  for (let pages = 0; pages < 10; pages++) {
    const page = journal.since(after, 10);
    if (page.length === 0) break;
    read.push(...page.map((event) => event.seq));
    after = page[page.length - 1].seq;
  }
  expect(read).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
  expect(journal.since(journal.lastSeq)).toEqual([]);
});

it('keeps only the newest events when nobody reads, counts the dropped ones, and never reuses a sequence number', () => {
  const journal = new Journal(3);
  for (let i = 0; i < 5; i++) opened(journal, `t${i}`);
  expect(journal.dropped).toBe(2);
  expect(journal.since(0).map((event) => [event.seq, event.link])).toEqual([
    [3, 't2'],
    [4, 't3'],
    [5, 't4'],
  ]);
  // A reader that stopped at 1 resumes with the oldest kept, and can tell it lost 2 by the gap.
  expect(journal.since(1)[0].seq).toBe(3);
  opened(journal, 't5');
  expect(journal.lastSeq).toBe(6);
  expect(journal.since(5).map((event) => event.seq)).toEqual([6]);
});
