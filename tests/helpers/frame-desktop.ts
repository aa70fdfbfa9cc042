/**
 * A hand-driven desktop end of a tunnel that sees every message in the form it arrived in (a
 * control message, a data frame or a whole frame), and what the 101 said of whole frames
 * (protocol/src/tunnel-whole.ts): for tests that must tell one whole frame from head, data and end.
 * Pings, pongs and target reports belong to no stream and are left out.
 */
import type { IncomingHttpHeaders } from 'node:http';
import WebSocket from 'ws';
import {
  decodeData,
  decodeFrame,
  decodeWhole,
  encodeControl,
  isWholeFrame,
  parseControl,
  POLL_WHOLE_CONTENT_TYPE,
  RecordReader,
  WHOLE_FRAMES_HEADER,
  type Frame,
  type PollRegistration,
  type WholeHead,
} from '@ctll/protocol';

export interface FrameDesktop {
  ws: WebSocket;
  /** What the 101 said in WHOLE_FRAMES_HEADER (undefined: nothing). */
  answered: string | undefined;
  /** All the 101's headers. */
  upgradeHeaders: IncomingHttpHeaders;
  /** The next message; rejects after 5 s of nothing. */
  next(): Promise<Frame>;
  /**
   * Sends a `ping` and waits for its `pong`: the proxy answers messages in order, so whatever it
   * sent in answer to what we sent before is then queued. Returns the queued messages.
   */
  roundTrip(): Promise<Frame[]>;
}

export async function openFrameDesktop(url: string, headers: Record<string, string>): Promise<FrameDesktop> {
  const ws = new WebSocket(url, { headers });
  const queue: Frame[] = [];
  const waiters: Array<(frame: Frame) => void> = [];
  const pongWaiters = new Map<number, () => void>();
  ws.on('message', (data: Buffer, isBinary) => {
    if (!isBinary) {
      const message = parseControl(data.toString());
      if (message.ok && message.value.type === 'pong') pongWaiters.get(message.value.ts)?.();
    }
    const frame = toFrame(data, isBinary);
    if (!frame) return;
    const waiter = waiters.shift();
    if (waiter) waiter(frame);
    else queue.push(frame);
  });
  let answered: string | undefined;
  let upgradeHeaders: IncomingHttpHeaders = {};
  ws.on('upgrade', (res) => {
    upgradeHeaders = res.headers;
    const value = res.headers[WHOLE_FRAMES_HEADER];
    answered = typeof value === 'string' ? value : undefined;
  });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const next = () =>
    new Promise<Frame>((resolve, reject) => {
      const queued = queue.shift();
      if (queued) return resolve(queued);
      const timer = setTimeout(() => reject(new Error('no tunnel message within 5 s')), 5000);
      waiters.push((frame) => {
        clearTimeout(timer);
        resolve(frame);
      });
    });
  let pings = 0;
  const roundTrip = async () => {
    const ts = (pings += 1);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no pong within 5 s')), 5000);
      pongWaiters.set(ts, () => {
        clearTimeout(timer);
        pongWaiters.delete(ts);
        resolve();
      });
      ws.send(encodeControl({ type: 'ping', ts }));
    });
    return queue.splice(0);
  };
  return { ws, answered, upgradeHeaders, next, roundTrip };
}

function toFrame(data: Buffer, isBinary: boolean): Frame | undefined {
  if (isBinary && isWholeFrame(data)) {
    const whole = decodeWhole(data);
    if (!whole.ok) throw new Error(`the relay sent a malformed whole frame: ${whole.error}`);
    return { kind: 'whole', whole: whole.value };
  }
  if (isBinary) {
    const frame = decodeData(data);
    if (!frame.ok) throw new Error(`the relay sent a malformed data frame: ${frame.error}`);
    return { kind: 'data', data: frame.value };
  }
  const message = parseControl(data.toString());
  if (!message.ok) throw new Error(`the relay sent a malformed message: ${message.error}`);
  return ['ping', 'pong', 'target'].includes(message.value.type) ? undefined : { kind: 'control', message: message.value };
}

/** The head of a short JSON answer of `body`, as a whole frame carries it. */
export function shortAnswerHead(id: string, body: Buffer): Extract<WholeHead, { type: 'http_response' }> {
  return { type: 'http_response', id, status: 200, headers: { 'content-type': 'application/json', 'content-length': String(body.byteLength) }, end: true };
}

/** The frames of a poll answer's body, each in the form it came in; throws on a malformed one. */
export function pollAnswerFrames(body: Buffer): Frame[] {
  const records = new RecordReader().push(body);
  if (!records.ok) throw new Error(records.error);
  return records.value.map((record) => {
    const frame = decodeFrame(record);
    if (!frame.ok) throw new Error(`the relay sent a malformed poll record: ${frame.error}`);
    return frame.value;
  });
}

/** A hand-driven polling desktop: its registration, its polls (each the frames of one answer) and whole-frame answers. */
export interface PollDesktop {
  status: number;
  registration: PollRegistration;
  /** The next poll answer that holds something (empty answers are polled again). */
  poll(): Promise<Frame[]>;
  /** POSTs one whole frame as stream `id`'s answer. */
  respond(id: string, frame: Buffer): Promise<Response>;
}

/** Registers at `relayUrl` with `token`, offering what `offer` says (the registration body). */
export async function registerPollDesktop(relayUrl: string, token: string, offer: Record<string, unknown>): Promise<PollDesktop> {
  const url = (path: string) => `${relayUrl}/api/bridge/${path}`;
  const auth = { authorization: `Bearer ${token}` };
  const registered = await fetch(url('register'), { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(offer) });
  const registration = (await registered.json()) as PollRegistration;
  return {
    status: registered.status,
    registration,
    async poll() {
      for (;;) {
        const res = await fetch(url(`poll/${registration.bridgeId}`), { headers: auth });
        if (res.status !== 204) return pollAnswerFrames(Buffer.from(await res.arrayBuffer()));
      }
    },
    respond: (id, frame) =>
      fetch(url(`respond/${registration.bridgeId}/${id}`), { method: 'POST', headers: { ...auth, 'content-type': POLL_WHOLE_CONTENT_TYPE }, body: frame }),
  };
}
