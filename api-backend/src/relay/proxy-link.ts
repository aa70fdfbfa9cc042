/**
 * api-backend's frame links to its proxies (protocol/src/proxy-link.ts): one WebSocket per proxy
 * endpoint, opened on the first request that needs it and again after it closed, carrying every
 * relayed request to that proxy as the tunnel's frames. The pool hands out a link only once both
 * sides said `hello` with the same protocol version and the proxy said whether a desktop is
 * connected.
 *
 * Both sides say in their hello whether they take whole frames (protocol/src/whole-frame.ts); a
 * short request goes to the proxy as one only if the proxy said so, and this side always says so.
 * The proxy's hello also says whether it answers a polling bridge's calls on the link.
 *
 * Each link is pinged (link-keepalive.ts); one that stops answering is closed like one that broke.
 * Its frames carry the zero masking key: nothing sits between api-backend and its proxies.
 */
import type { Socket } from 'node:net';
import WebSocket, { type RawData } from 'ws';
import {
  decodeData,
  decodeWhole,
  encodeData,
  encodeWhole,
  encodeLinkMessage,
  FLOW_CONTROL_CLOSE_CODE,
  FLOW_CONTROL_CLOSE_REASON,
  FlowControlError,
  isWholeFrame,
  LINK_VERSION_CLOSE_CODE,
  linkVersionMismatch,
  MAX_FRAME_BYTES,
  parseLinkMessage,
  PROTOCOL_VERSION,
  PROXY_LINK_PATH,
  PROXY_SECRET_HEADER,
  type ControlMessage,
  type HttpResponseMessage,
  type LinkMessage,
  type WholeHead,
  WriteGather,
  zeroMask,
} from '@ctll/protocol';
import type { ProxyEndpoint } from '../proxy/driver';
import type { Logger } from '../logger';
import { LINK_PING_INTERVAL_MS, LinkKeepalive } from './link-keepalive';

/** What one relayed request hears from the proxy over the link. */
export interface LinkStreamHandler {
  onResponse(message: HttpResponseMessage): void;
  /** A whole answer in one frame (head, body, end); its body is outside the stream's credit. */
  onWhole(message: HttpResponseMessage, body: Buffer): void;
  /** Throws FlowControlError past the credit granted: the link closes. */
  onData(payload: Buffer): void;
  onEnd(): void;
  /** Throws FlowControlError for a grant beyond what was sent: the link closes. */
  onWindow(bytes: number): void;
  /** The proxy failed the stream, or the link went away. */
  onError(code: string, message: string): void;
}

export interface ProxyLinkOptions {
  openTimeoutMs: number;
  logger: Logger;
  /** The version this side says in its hello (PROTOCOL_VERSION; tests say another). */
  version?: number;
  /** LINK_PING_INTERVAL_MS unless a test says otherwise. */
  pingIntervalMs?: number;
}

export class ProxyLink {
  private readonly streams = new Map<string, LinkStreamHandler>();
  private nextId = 0;
  private isClosed = false;
  private readonly keepalive: LinkKeepalive;
  /** Whether the proxy has a desktop connected now (it says so at once and on every change). */
  desktopConnected = false;
  /** Whether the proxy said in its hello that it takes whole frames. */
  acceptsWhole = false;
  /** Whether the proxy said in its hello that it answers a polling bridge's calls on the link. */
  acceptsBridgeCalls = false;
  /** The turn's messages leave in one socket write (protocol/src/write-gather.ts). */
  private readonly gather: WriteGather;

  constructor(
    private readonly ws: WebSocket,
    private readonly logger: Logger,
    private readonly onClosed: (link: ProxyLink) => void,
    pingIntervalMs = LINK_PING_INTERVAL_MS,
    /** The link's TCP socket, to gather its writes (undefined: every message is a write of its own). */
    socket?: Socket,
  ) {
    this.gather = new WriteGather(socket);
    ws.on('message', (data, isBinary) => this.receive(data, isBinary));
    ws.on('close', (code, reason) => this.gone(code, reason.toString()));
    this.keepalive = new LinkKeepalive(ws, pingIntervalMs, () => {
      this.logger.warn('a frame link to a proxy stopped answering pings; closing it');
      this.ws.terminate();
      this.gone(1006, 'no answer to ping');
    });
  }

  get closed(): boolean {
    return this.isClosed;
  }

  get size(): number {
    return this.streams.size;
  }

  open(handler: LinkStreamHandler): string {
    const id = (this.nextId++).toString(36);
    this.streams.set(id, handler);
    return id;
  }

  /** Forgets a stream; frames for it still in flight are dropped. */
  forget(id: string): void {
    this.streams.delete(id);
  }

  sendControl(message: ControlMessage): void {
    if (this.isClosed) return;
    this.gather.hold();
    this.ws.send(encodeLinkMessage(message));
  }

  sendData(id: string, payload: Buffer): void {
    if (this.isClosed) return;
    this.gather.hold();
    this.ws.send(encodeData(id, payload), { binary: true });
  }

  /** Sends a short request as one whole frame; false (nothing sent) when its head is too big for one. */
  sendWhole(head: WholeHead, body: Buffer): boolean {
    if (this.isClosed) return true;
    const frame = encodeWhole(head, body);
    if (!frame) return false;
    this.gather.hold();
    this.ws.send(frame, { binary: true });
    return true;
  }

  close(code = 1000, reason = 'closing'): void {
    if (this.isClosed) return;
    this.ws.close(code, reason);
    setTimeout(() => this.ws.terminate(), 2000).unref();
    this.gone(code, reason);
  }

  private receive(data: RawData, isBinary: boolean): void {
    if (this.isClosed) return;
    this.keepalive.heard();
    const buffer = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    try {
      if (isBinary && isWholeFrame(buffer)) return this.receiveWhole(buffer);
      if (isBinary) {
        const frame = decodeData(buffer);
        if (!frame.ok) {
          this.logger.warn('the proxy sent a malformed frame', { reason: frame.error });
          return;
        }
        this.streams.get(frame.value.id)?.onData(frame.value.payload);
        return;
      }
      const parsed = parseLinkMessage(buffer.toString('utf8'));
      if (!parsed.ok) {
        this.logger.warn('the proxy sent a malformed link message', { reason: parsed.error });
        return;
      }
      this.dispatch(parsed.value);
    } catch (error) {
      if (!(error instanceof FlowControlError)) throw error;
      this.logger.warn('the proxy broke flow control on the frame link; closing it', { detail: error.message });
      this.close(FLOW_CONTROL_CLOSE_CODE, FLOW_CONTROL_CLOSE_REASON);
    }
  }

  private receiveWhole(buffer: Buffer): void {
    const frame = decodeWhole(buffer);
    if (!frame.ok || frame.value.head.type !== 'http_response') {
      const reason = frame.ok ? 'a whole frame from the proxy must be an answer' : frame.error;
      this.logger.warn('the proxy sent a malformed whole frame', { reason });
      // Only the stream it names fails; the link and its other streams go on.
      const id = frame.ok ? frame.value.head.id : frame.id;
      if (id !== undefined) this.streams.get(id)?.onError('bad_response', `the streaming proxy sent a malformed answer: ${reason}`);
      return;
    }
    this.streams.get(frame.value.head.id)?.onWhole(frame.value.head, frame.value.body);
  }

  private dispatch(message: LinkMessage): void {
    switch (message.type) {
      case 'desktop':
        this.desktopConnected = message.connected;
        return;
      case 'http_response':
        return this.streams.get(message.id)?.onResponse(message);
      case 'end':
        return this.streams.get(message.id)?.onEnd();
      case 'window':
        return this.streams.get(message.id)?.onWindow(message.bytes);
      case 'error':
        if (message.id === undefined) this.logger.warn('the proxy reported a link error', { code: message.code, message: message.message });
        // An error for a stream already over (a frame that crossed its end) needs no answer.
        else this.streams.get(message.id)?.onError(message.code, message.message);
        return;
      case 'ping':
        return this.sendControl({ type: 'pong', ts: message.ts });
      default:
        return;
    }
  }

  private gone(code: number, reason: string): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.keepalive.stop();
    this.logger.info('frame link to a proxy closed', { code, reason, streams: this.streams.size });
    const handlers = [...this.streams.values()];
    this.streams.clear();
    this.onClosed(this);
    for (const handler of handlers) handler.onError('proxy_unreachable', 'the link to your streaming proxy closed');
  }
}

/** Opens a link and resolves once both hellos and the first desktop state are through. */
export function openProxyLink(endpoint: ProxyEndpoint, options: ProxyLinkOptions, onClosed: (link: ProxyLink) => void): Promise<ProxyLink> {
  const version = options.version ?? PROTOCOL_VERSION;
  const ws = new WebSocket(`ws://${endpoint.host}:${endpoint.port}${PROXY_LINK_PATH}`, {
    headers: { [PROXY_SECRET_HEADER]: endpoint.secret },
    perMessageDeflate: false,
    maxPayload: MAX_FRAME_BYTES,
    handshakeTimeout: options.openTimeoutMs,
    // The link runs on loopback or the user's private network to a proxy of ours: no intermediary
    // reads its frames, so the zero key (protocol/src/ws-mask.ts) spares both ends a pass over
    // every uploaded byte.
    generateMask: zeroMask,
  });
  // ws's own socket, handed over with the upgrade's answer.
  let socket: Socket | undefined;
  ws.once('upgrade', (res) => {
    socket = res.socket;
  });
  return new Promise((resolve, reject) => {
    let greeted = false;
    let acceptsWhole = false;
    let acceptsBridgeCalls = false;
    const fail = (error: Error) => {
      clearTimeout(timer);
      ws.off('message', opening);
      ws.terminate();
      reject(error);
    };
    const timer = setTimeout(() => fail(new Error(`the proxy's frame link did not open within ${options.openTimeoutMs} ms`)), options.openTimeoutMs);
    const opening = (data: RawData, isBinary: boolean) => {
      const parsed = isBinary ? undefined : parseLinkMessage(data.toString());
      if (!parsed?.ok) return fail(new Error('the proxy opened the frame link with something else than hello'));
      const message = parsed.value;
      if (!greeted) {
        if (message.type !== 'hello') return fail(new Error('the proxy opened the frame link with something else than hello'));
        if (message.version !== version) {
          const reason = linkVersionMismatch(version, message.version, 'api-backend');
          ws.close(LINK_VERSION_CLOSE_CODE, reason);
          return fail(new Error(reason));
        }
        greeted = true;
        acceptsWhole = message.whole === true;
        acceptsBridgeCalls = message.bridgeCalls === true;
        return;
      }
      if (message.type !== 'desktop') return fail(new Error(`the proxy sent ${message.type} before saying whether a desktop is connected`));
      clearTimeout(timer);
      ws.off('message', opening);
      ws.off('close', closedEarly);
      const link = new ProxyLink(ws, options.logger, onClosed, options.pingIntervalMs, socket);
      link.desktopConnected = message.connected;
      link.acceptsWhole = acceptsWhole;
      link.acceptsBridgeCalls = acceptsBridgeCalls;
      resolve(link);
    };
    const closedEarly = (code: number, reason: Buffer) => fail(new Error(`the proxy closed the frame link as it opened (${code} ${reason.toString()})`.trim()));
    ws.on('message', opening);
    ws.on('close', closedEarly);
    // ws sets TCP_NODELAY on its socket itself.
    ws.on('open', () => ws.send(encodeLinkMessage({ type: 'hello', version, whole: true })));
    ws.on('unexpected-response', (_req, res) => {
      res.resume();
      fail(new Error(`the proxy answered the frame link's upgrade with ${res.statusCode}`));
    });
    ws.on('error', (error) => fail(error));
  });
}

/** One link per proxy endpoint, shared by every request to that proxy. */
export class ProxyLinkPool {
  private readonly links = new Map<string, Promise<ProxyLink>>();

  constructor(private readonly options: ProxyLinkOptions) {}

  /** The endpoint's link, opened if need be. Rejects when it cannot be opened. */
  async get(endpoint: ProxyEndpoint): Promise<ProxyLink> {
    const key = `${endpoint.host}:${endpoint.port}`;
    let pending = this.links.get(key);
    if (!pending) {
      pending = openProxyLink(endpoint, this.options, () => {
        if (this.links.get(key) === pending) this.links.delete(key);
      });
      this.links.set(key, pending);
      pending.catch(() => {
        if (this.links.get(key) === pending) this.links.delete(key);
      });
    }
    const link = await pending;
    return link.closed ? this.get(endpoint) : link;
  }

  close(): void {
    for (const pending of this.links.values()) void pending.then((link) => link.close(1001, 'api-backend stopping'), () => undefined);
    this.links.clear();
  }
}
