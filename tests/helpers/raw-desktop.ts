/**
 * A hand-driven desktop end of a tunnel: a raw WebSocket whose control messages a test reads one
 * by one, and whose frames it writes itself (a hostile or broken bridge, or a proxy test without a
 * relay). Data frames from the other side are ignored.
 */
import WebSocket from 'ws';
import { parseControl, type ControlMessage } from '@ctll/protocol';

export interface RawDesktop {
  ws: WebSocket;
  /** The next control message from the other side; rejects after `timeoutMs` of nothing. */
  next(): Promise<ControlMessage>;
  /** Resolves with the close code and reason once the tunnel closes. */
  closed: Promise<{ code: number; reason: string }>;
}

export function openRawDesktop(url: string, headers: Record<string, string>, timeoutMs = 10_000): Promise<RawDesktop> {
  const ws = new WebSocket(url, { headers });
  const queue: ControlMessage[] = [];
  const waiters: Array<(m: ControlMessage) => void> = [];
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    const parsed = parseControl(data.toString());
    if (!parsed.ok) return;
    const waiter = waiters.shift();
    if (waiter) waiter(parsed.value);
    else queue.push(parsed.value);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  const next = () =>
    new Promise<ControlMessage>((resolve, reject) => {
      const queued = queue.shift();
      if (queued) return resolve(queued);
      const timer = setTimeout(() => reject(new Error(`no control message within ${timeoutMs} ms`)), timeoutMs);
      waiters.push((m) => {
        clearTimeout(timer);
        resolve(m);
      });
    });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, next, closed }));
    ws.once('error', reject);
  });
}

/** How a WebSocket upgrade is answered: the refusal's status and body, or 101 (then closed at once). */
export function upgradeAnswer(url: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.on('open', () => {
      ws.terminate();
      resolve({ status: 101, body: '' });
    });
    ws.on('error', reject);
  });
}
