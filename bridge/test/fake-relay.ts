/**
 * A relay we script by hand, for the protocol rules the real proxy never breaks: a `ws` server on
 * 127.0.0.1 that records each bridge's upgrade request and every message it sends, and lets the
 * test send whatever it likes back (including garbage). With `takesWhole` it answers a bridge's
 * offer of whole frames (protocol/src/tunnel-whole.ts) on the 101 and records the ones it gets.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  decodeData,
  decodeWhole,
  encodeControl,
  encodeData,
  isWholeFrame,
  parseControl,
  saysWhole,
  WHOLE_FRAMES_HEADER,
  WHOLE_FRAMES_HEADER_VALUE,
  type ControlMessage,
  type WholeFrame,
} from '@ctll/protocol';

export interface Peer {
  ws: WebSocket;
  request: http.IncomingMessage;
  /** Every control message the bridge sent, in order. */
  controls: ControlMessage[];
  /** Body bytes the bridge sent, by stream id. */
  data: Map<string, Buffer[]>;
  /** Whole frames the bridge sent, in order. */
  wholes: WholeFrame[];
  send(message: ControlMessage | string): void;
  sendData(id: string, payload: Buffer): void;
  /** Resolves with the first control message (already received or still to come) that matches. */
  waitFor<T extends ControlMessage>(match: (message: ControlMessage) => message is T, timeoutMs?: number): Promise<T>;
  waitFor(match: (message: ControlMessage) => boolean, timeoutMs?: number): Promise<ControlMessage>;
  bytes(id: string): number;
}

export interface FakeRelay {
  url: string;
  /** Resolves with the next bridge to connect. */
  nextPeer(): Promise<Peer>;
  /** Forgets connected peers nobody asked for yet (bridges of an earlier test that reconnected). */
  forgetPending(): void;
  /** Upgrade requests seen (accepted or refused). */
  upgrades: http.IncomingMessage[];
  close(): Promise<void>;
}

/** `refuse` answers the upgrade with an HTTP status and body instead of accepting it. */
export async function startFakeRelay(refuse?: { status: number; body: string }, options: { takesWhole?: boolean } = {}): Promise<FakeRelay> {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  wss.on('headers', (headers, req) => {
    if (options.takesWhole && saysWhole(req.headers[WHOLE_FRAMES_HEADER])) headers.push(`${WHOLE_FRAMES_HEADER}: ${WHOLE_FRAMES_HEADER_VALUE}`);
  });
  const upgrades: http.IncomingMessage[] = [];
  const pending: Peer[] = [];
  const waiting: Array<(peer: Peer) => void> = [];
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  server.on('upgrade', (req, socket, head) => {
    upgrades.push(req);
    if (refuse) {
      // A bridge that gives up or closes may reset the connection while the refusal is written.
      socket.on('error', () => undefined);
      const body = refuse.body;
      socket.end(
        `HTTP/1.1 ${refuse.status} ${http.STATUS_CODES[refuse.status]}\r\ncontent-type: application/json\r\n` +
          `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const peer = makePeer(ws, req);
      const waiter = waiting.shift();
      if (waiter) waiter(peer);
      else pending.push(peer);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    upgrades,
    forgetPending: () => {
      for (const peer of pending.splice(0)) peer.ws.terminate();
    },
    nextPeer: () => {
      const peer = pending.shift();
      return peer ? Promise.resolve(peer) : new Promise((resolve) => waiting.push(resolve));
    },
    close: () =>
      new Promise((resolve) => {
        for (const client of wss.clients) client.terminate();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function makePeer(ws: WebSocket, request: http.IncomingMessage): Peer {
  const controls: ControlMessage[] = [];
  const data = new Map<string, Buffer[]>();
  const wholes: WholeFrame[] = [];
  const listeners = new Set<() => void>();
  ws.on('message', (raw: Buffer, isBinary) => {
    if (isBinary && isWholeFrame(raw)) {
      const whole = decodeWhole(raw);
      if (!whole.ok) throw new Error(`the bridge sent a bad whole frame: ${whole.error}`);
      wholes.push({ head: whole.value.head, body: Buffer.from(whole.value.body) });
    } else if (isBinary) {
      const frame = decodeData(raw);
      if (!frame.ok) throw new Error(`the bridge sent a bad data frame: ${frame.error}`);
      const list = data.get(frame.value.id) ?? [];
      list.push(Buffer.from(frame.value.payload));
      data.set(frame.value.id, list);
    } else {
      const message = parseControl(raw.toString('utf8'));
      if (!message.ok) throw new Error(`the bridge sent a bad control message: ${message.error}`);
      controls.push(message.value);
    }
    for (const listener of [...listeners]) listener();
  });
  const waitFor = (match: (message: ControlMessage) => boolean, timeoutMs = 5_000) =>
    new Promise<ControlMessage>((resolve, reject) => {
      const check = () => {
        const found = controls.find(match);
        if (!found) return;
        listeners.delete(check);
        clearTimeout(timer);
        resolve(found);
      };
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(new Error(`no matching message in ${timeoutMs} ms; got ${JSON.stringify(controls)}`));
      }, timeoutMs);
      listeners.add(check);
      check();
    });
  return {
    ws,
    request,
    controls,
    data,
    wholes,
    send: (message) => ws.send(typeof message === 'string' ? message : encodeControl(message)),
    sendData: (id, payload) => ws.send(encodeData(id, payload), { binary: true }),
    waitFor: waitFor as Peer['waitFor'],
    bytes: (id) => (data.get(id) ?? []).reduce((sum, chunk) => sum + chunk.byteLength, 0),
  };
}
