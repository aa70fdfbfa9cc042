/**
 * api-backend's end of the frame link, played by hand against the real proxy server: every
 * message from the proxy (control, data frame, whole frame) is read in the order it came, so a
 * test can tell one whole frame from a head, data and end.
 */
import WebSocket from 'ws';
import { decodeData, decodeWhole, isWholeFrame, parseLinkMessage, PROXY_LINK_PATH, PROXY_SECRET_HEADER, type LinkMessage, type WholeFrame } from '@ctll/protocol';
import { SECRET, type TestProxy } from './proxy';

export type LinkEvent = { kind: 'control'; message: LinkMessage } | { kind: 'data'; id: string; payload: Buffer } | { kind: 'whole'; frame: WholeFrame };

export interface RawLink {
  ws: WebSocket;
  /** The next message of any kind; rejects after 5 s of nothing. */
  nextEvent(): Promise<LinkEvent>;
  /** The next control message, skipping frames. */
  next(): Promise<LinkMessage>;
  /** Every message that arrives within `ms` (and any not yet read), once that time is up. */
  settle(ms: number): Promise<LinkEvent[]>;
  closed: Promise<{ code: number; reason: string }>;
}

export function openRawLink(proxy: TestProxy): Promise<RawLink> {
  const ws = new WebSocket(`${proxy.url.replace('http', 'ws')}${PROXY_LINK_PATH}`, { headers: { [PROXY_SECRET_HEADER]: SECRET } });
  const queue: LinkEvent[] = [];
  const waiters: Array<(event: LinkEvent) => void> = [];
  ws.on('message', (data: Buffer, isBinary) => {
    const event = toEvent(data, isBinary);
    const waiter = waiters.shift();
    if (waiter) waiter(event);
    else queue.push(event);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  const nextEvent = () =>
    new Promise<LinkEvent>((resolve, reject) => {
      const queued = queue.shift();
      if (queued) return resolve(queued);
      const timer = setTimeout(() => reject(new Error('no link message within 5 s')), 5000);
      waiters.push((event) => {
        clearTimeout(timer);
        resolve(event);
      });
    });
  const next = async (): Promise<LinkMessage> => {
    for (;;) {
      const event = await nextEvent();
      if (event.kind === 'control') return event.message;
    }
  };
  const settle = async (ms: number): Promise<LinkEvent[]> => {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return queue.splice(0);
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, nextEvent, next, settle, closed }));
    ws.once('error', reject);
  });
}

function toEvent(data: Buffer, isBinary: boolean): LinkEvent {
  if (!isBinary) {
    const parsed = parseLinkMessage(data.toString());
    if (!parsed.ok) throw new Error(`the proxy sent a malformed link message: ${parsed.error}`);
    return { kind: 'control', message: parsed.value };
  }
  if (isWholeFrame(data)) {
    const whole = decodeWhole(data);
    if (!whole.ok) throw new Error(`the proxy sent a malformed whole frame: ${whole.error}`);
    return { kind: 'whole', frame: whole.value };
  }
  const frame = decodeData(data);
  if (!frame.ok) throw new Error(`the proxy sent a malformed data frame: ${frame.error}`);
  return { kind: 'data', id: frame.value.id, payload: frame.value.payload };
}

export async function nextOf<T extends LinkMessage['type']>(link: RawLink, type: T): Promise<Extract<LinkMessage, { type: T }>> {
  for (;;) {
    const message = await link.next();
    if (message.type === type) return message as Extract<LinkMessage, { type: T }>;
  }
}
