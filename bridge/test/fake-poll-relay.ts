/**
 * A long-poll relay we script by hand, for the bridge's side of the polling transport: an HTTP
 * server on 127.0.0.1 with the four /api/bridge routes. It records registrations, heartbeats and
 * every streamed answer (head record, then body chunks with their arrival times), and lets the
 * test put whatever it likes into the next poll answer, including garbage and awkward splits.
 * With `takesWhole` it answers a registration's offer of whole frames (protocol/src/tunnel-whole.ts)
 * and takes a whole answer POST; with `agreesWindow` it answers an offer of growing windows
 * (protocol/src/stream-window.ts) with that many bytes.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  controlFrame,
  decodeWhole,
  encodeData,
  parseControl,
  parseResponseHead,
  POLL_BATCH_CONTENT_TYPE,
  POLL_WHOLE_CONTENT_TYPE,
  RecordReader,
  recordHeader,
  type ControlMessage,
  type ResponseHead,
} from '@ctll/protocol';

export interface Answer {
  head: ResponseHead | undefined;
  /** Body chunks after the head, as they arrived. */
  chunks: Array<{ at: number; bytes: Buffer }>;
  ended: boolean;
  /** The bridge cut the POST before its end. */
  cut: boolean;
  /** The answer came as one whole frame. */
  whole: boolean;
  req: http.IncomingMessage;
}

export interface FakePollRelay {
  url: string;
  registrations: Array<{ body: Record<string, unknown>; headers: http.IncomingHttpHeaders }>;
  /** Control messages that came with heartbeats, in order. */
  heartbeatMessages: ControlMessage[];
  heartbeats: number;
  polls: number;
  answers: Map<string, Answer>;
  /** True while a poll waits for something to carry. */
  readonly pollWaiting: boolean;
  /** True while an answer sent in pieces (`split`) is still being written. */
  readonly answerWriting: boolean;
  /**
   * Queues records for the bridge: answered at once if a poll waits. `split` writes the answer in
   * pieces of that many bytes; `cutAt` (with `split`) destroys the connection once that many are written.
   */
  send(frames: Array<ControlMessage | Buffer>, split?: number, cutAt?: number): void;
  /** The next poll gets this status and JSON body instead. */
  failNextPoll(status: number, body: unknown): void;
  /** From now on, polls are never answered (a relay whose host vanished behind a proxy). */
  silence(): void;
  /** The next registration gets this status and JSON body instead. */
  failNextRegister(status: number, body: unknown): void;
  /** Every registration from now on gets this status and body (a JSON value, or text when a string); undefined accepts again. */
  refuseRegistrations(refusal: { status: number; body: unknown } | undefined): void;
  /** Resolves when an answer for `id` has arrived whole (or was cut). */
  answer(id: string, timeoutMs?: number): Promise<Answer>;
  /** Resolves when a condition on the recorded state holds. */
  until(check: () => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export const data = (id: string, bytes: Buffer): Buffer => encodeData(id, bytes);

export async function startFakePollRelay(
  timing: { pollTimeoutMs?: number; heartbeatIntervalMs?: number; takesWhole?: boolean; agreesWindow?: number } = {},
): Promise<FakePollRelay> {
  const listeners = new Set<() => void>();
  const changed = () => {
    for (const listener of [...listeners]) listener();
  };
  let queue: Array<{ record: Buffer; split?: number; cutAt?: number }> = [];
  let waiting: { res: http.ServerResponse; timer: NodeJS.Timeout } | undefined;
  let pollFailure: { status: number; body: unknown } | undefined;
  let registerFailure: { status: number; body: unknown } | undefined;
  let registerRefusal: { status: number; body: unknown } | undefined;
  let silent = false;
  let bridges = 0;
  let writing = 0;

  const deliver = (res: http.ServerResponse) => {
    const items = queue;
    queue = [];
    const body = Buffer.concat(items.map((item) => item.record));
    const split = items.find((item) => item.split)?.split;
    const cutAt = items.find((item) => item.cutAt !== undefined)?.cutAt ?? Infinity;
    res.writeHead(200, { 'content-type': POLL_BATCH_CONTENT_TYPE, 'content-length': body.byteLength });
    if (!split) {
      res.end(body);
      return;
    }
    let offset = 0;
    writing += 1;
    const next = () => {
      res.write(body.subarray(offset, offset + split));
      offset += split;
      if (offset >= cutAt) {
        writing -= 1;
        return void res.socket?.destroy();
      }
      if (offset < body.byteLength) return void setTimeout(next, 1);
      writing -= 1;
      res.end();
    };
    next();
  };

  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };

  const readJson = async (req: http.IncomingMessage): Promise<Record<string, unknown>> => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
  };

  const relay: FakePollRelay = {
    url: '',
    close: () => Promise.resolve(),
    registrations: [],
    heartbeatMessages: [],
    heartbeats: 0,
    polls: 0,
    answers: new Map(),
    get pollWaiting() {
      return waiting !== undefined;
    },
    get answerWriting() {
      return writing > 0;
    },
    send(frames, split, cutAt) {
      for (const frame of frames) {
        const bytes = Buffer.isBuffer(frame) ? frame : controlFrame(frame);
        queue.push({ record: Buffer.concat([recordHeader(bytes.byteLength), bytes]), split, cutAt });
      }
      if (waiting) {
        clearTimeout(waiting.timer);
        const { res } = waiting;
        waiting = undefined;
        deliver(res);
      }
    },
    failNextPoll: (status, body) => (pollFailure = { status, body }),
    failNextRegister: (status, body) => (registerFailure = { status, body }),
    refuseRegistrations: (refusal) => (registerRefusal = refusal),
    silence: () => (silent = true),
    answer: (id, timeoutMs = 5_000) =>
      relay.until(() => {
        const answer = relay.answers.get(id);
        return answer !== undefined && (answer.ended || answer.cut);
      }, timeoutMs).then(() => relay.answers.get(id)!),
    until: (check, timeoutMs = 5_000) =>
      new Promise<void>((resolve, reject) => {
        const test = () => {
          if (!check()) return;
          listeners.delete(test);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          listeners.delete(test);
          reject(new Error(`condition not met in ${timeoutMs} ms`));
        }, timeoutMs);
        listeners.add(test);
        test();
      }),
  };

  const server = http.createServer((req, res) => {
    void (async () => {
      const [, , , action, , requestId] = (req.url ?? '').split('/');
      if (req.method === 'POST' && action === 'register') {
        relay.registrations.push({ body: await readJson(req), headers: req.headers });
        changed();
        if (registerFailure) {
          json(res, registerFailure.status, registerFailure.body);
          registerFailure = undefined;
          return;
        }
        if (registerRefusal) {
          if (typeof registerRefusal.body === 'string') res.writeHead(registerRefusal.status, { 'content-type': 'text/html' }).end(registerRefusal.body);
          else json(res, registerRefusal.status, registerRefusal.body);
          return;
        }
        bridges += 1;
        const offered = relay.registrations[relay.registrations.length - 1].body.whole === true;
        json(res, 201, {
          bridgeId: `b${bridges}`,
          pollTimeoutMs: timing.pollTimeoutMs ?? 1_000,
          heartbeatIntervalMs: timing.heartbeatIntervalMs ?? 1_000,
          graceMs: 3_000,
          maxQueuedRequests: 64,
          ...(timing.takesWhole && offered ? { whole: true } : {}),
          ...(timing.agreesWindow !== undefined && typeof relay.registrations[relay.registrations.length - 1].body.window === 'number' ? { window: timing.agreesWindow } : {}),
        });
        return;
      }
      if (req.method === 'GET' && action === 'poll') {
        relay.polls += 1;
        changed();
        if (pollFailure) {
          json(res, pollFailure.status, pollFailure.body);
          pollFailure = undefined;
          return;
        }
        if (silent) return;
        if (queue.length > 0) return deliver(res);
        const timer = setTimeout(() => {
          if (waiting?.res !== res) return;
          waiting = undefined;
          res.writeHead(204).end();
        }, timing.pollTimeoutMs ?? 1_000);
        waiting = { res, timer };
        changed();
        req.on('close', () => {
          if (waiting?.res === res) {
            clearTimeout(timer);
            waiting = undefined;
          }
        });
        return;
      }
      if (req.method === 'POST' && action === 'heartbeat') {
        const body = await readJson(req);
        relay.heartbeats += 1;
        for (const raw of (body.messages as unknown[]) ?? []) {
          const parsed = parseControl(JSON.stringify(raw));
          if (!parsed.ok) throw new Error(`the bridge sent a bad heartbeat message: ${parsed.error}`);
          relay.heartbeatMessages.push(parsed.value);
        }
        changed();
        json(res, 200, { ok: true });
        return;
      }
      if (req.method === 'POST' && action === 'respond' && requestId) {
        const answer: Answer = { head: undefined, chunks: [], ended: false, cut: false, whole: false, req };
        relay.answers.set(requestId, answer);
        if ((req.headers['content-type'] ?? '').startsWith(POLL_WHOLE_CONTENT_TYPE)) {
          const chunks: Buffer[] = [];
          for await (const chunk of req) chunks.push(chunk as Buffer);
          const frame = decodeWhole(Buffer.concat(chunks));
          if (!frame.ok || frame.value.head.type !== 'http_response') throw new Error('the bridge sent a bad whole answer');
          answer.head = { status: frame.value.head.status, headers: frame.value.head.headers };
          answer.chunks.push({ at: Date.now(), bytes: Buffer.from(frame.value.body) });
          answer.whole = true;
          answer.ended = true;
          changed();
          json(res, 200, { ok: true });
          return;
        }
        const reader = new RecordReader();
        req.on('data', (chunk: Buffer) => {
          if (answer.head) {
            answer.chunks.push({ at: Date.now(), bytes: chunk });
          } else {
            const records = reader.push(chunk, 1);
            if (!records.ok || records.value.length === 0) return;
            const head = parseResponseHead(records.value[0]);
            if (!head.ok) throw new Error(`the bridge sent a bad head: ${head.error}`);
            answer.head = head.value;
            const rest = reader.takeRest();
            if (rest.byteLength > 0) answer.chunks.push({ at: Date.now(), bytes: rest });
          }
          changed();
        });
        req.on('end', () => {
          answer.ended = true;
          changed();
          json(res, 200, { ok: true });
        });
        req.on('close', () => {
          if (answer.ended) return;
          answer.cut = true;
          changed();
        });
        return;
      }
      json(res, 404, { error: { code: 'not_found', message: `no route ${req.method} ${req.url}` } });
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  relay.url = `http://127.0.0.1:${port}`;
  relay.close = () =>
    new Promise((resolve) => {
      if (waiting) clearTimeout(waiting.timer);
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return relay;
}
