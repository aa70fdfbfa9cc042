/**
 * The proxy's end of api-backend's frame link (protocol/src/proxy-link.ts): a WebSocket at
 * PROXY_LINK_PATH, opened by api-backend with the proxy secret, carrying many requests at once as
 * the tunnel's frames; it is the only way relayed requests reach this proxy. Each request is
 * admitted by the user's limits, then carried to the desktop's link by a RelayedStream, or, while
 * no desktop is connected, to the user's zrok share by a ShareStream (else it is answered
 * desktop_offline); no HTTP is parsed on the way to the desktop.
 *
 * Frames are validated here and only here. A bad one is answered with `error` and the link stays;
 * frames for a stream id this link does not know are answered with `unknown_stream`. A peer that
 * breaks flow control gets the link closed with 1008, a `hello` of another version with
 * LINK_VERSION_CLOSE_CODE. When the link goes, every stream on it is cancelled at the desktop.
 *
 * This side's hello says it takes whole frames (protocol/src/whole-frame.ts), and it sends short
 * answers as whole frames only if api-backend's hello said the same. A malformed whole frame is
 * answered like any bad message, and for the stream it names when its head got that far.
 *
 * It also says `bridgeCalls: true`: a request marked with BRIDGE_CALL_HEADER is a polling bridge's
 * own call, answered here by the polling transport's routes (bridge-call.ts).
 */
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import {
  BRIDGE_CALL_HEADER,
  decodeData,
  decodeWhole,
  encodeData,
  encodeWhole,
  encodeLinkMessage,
  errorMessage,
  FLOW_CONTROL_CLOSE_CODE,
  FLOW_CONTROL_CLOSE_REASON,
  FlowControlError,
  isWholeFrame,
  CatalogueError,
  LINK_VERSION_CLOSE_CODE,
  linkVersionMismatch,
  MAX_FRAME_BYTES,
  parseLinkMessage,
  TunnelErrorCode,
  type ControlMessage,
  type HttpRequestMessage,
  type LinkMessage,
  type WholeHead,
  type Corkable,
  WriteGather,
} from '@ctll/protocol';
import type { ProxyConfig } from '../config';
import type { Logger } from '../logger';
import type { ProxyStats } from '../stats';
import type { TunnelHub } from '../tunnel/hub';
import type { UserLimits } from '../limits/user-limits';
import type { ZrokPath } from '../zrok/zrok-path';
import { RelayedStream, type RelayedStreamOptions, type UpstreamSender, type UpstreamStream } from './relayed-stream';
import { ShareStream } from './share-stream';
import { sendErrorAnswer } from './error-answer';
import { BridgeCall } from './bridge-call';
import type { BridgeHandler } from '../http/bridge-exchange';

export interface UpstreamDeps {
  config: ProxyConfig;
  hub: TunnelHub;
  stats: ProxyStats;
  limits: UserLimits;
  logger: Logger;
  /** The fallback to the user's zrok shares while no desktop is connected; absent, such requests get desktop_offline. */
  zrok?: ZrokPath;
  /** The polling transport's routes, for bridge calls (BRIDGE_CALL_HEADER). */
  bridge: BridgeHandler;
}

/** Takes api-backend's upgrades to the frame link (the secret is checked before). */
export function upstreamLinks(deps: UpstreamDeps): (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void {
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false, clientTracking: false });
  return (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => new UpstreamLink(ws, deps, socket));
  };
}

export class UpstreamLink implements UpstreamSender {
  private readonly streams = new Map<string, UpstreamStream>();
  private greeted = false;
  /** Whether api-backend said in its hello that it takes whole frames. */
  acceptsWhole = false;
  private closed = false;
  private lastDesktop: boolean | undefined;
  private readonly unsubscribe: () => void;
  /** The turn's messages leave in one socket write (protocol/src/write-gather.ts). */
  private readonly gather: WriteGather;

  constructor(
    private readonly ws: WebSocket,
    private readonly deps: UpstreamDeps,
    /** The link's socket, to gather its writes (undefined: every message is a write of its own). */
    socket?: Corkable,
  ) {
    this.gather = new WriteGather(socket);
    ws.on('message', (data, isBinary) => this.receive(data, isBinary));
    ws.on('close', () => this.gone());
    ws.on('error', (error) => deps.logger.warn('frame link socket error', { error: error.message }));
    this.send({ type: 'hello', version: deps.config.protocolVersion, whole: true, bridgeCalls: true });
    this.unsubscribe = deps.hub.onChange(() => this.tellDesktop());
    this.tellDesktop();
  }

  sendControl(message: ControlMessage): void {
    this.send(message);
  }

  sendData(id: string, payload: Buffer): void {
    if (this.closed) return;
    this.deps.stats.touch();
    this.gather.hold();
    this.ws.send(encodeData(id, payload), { binary: true });
  }

  sendWhole(head: WholeHead, body: Buffer): boolean {
    if (this.closed) return true;
    const frame = encodeWhole(head, body);
    if (!frame) return false;
    this.deps.stats.touch();
    this.gather.hold();
    this.ws.send(frame, { binary: true });
    return true;
  }

  private send(message: LinkMessage): void {
    if (this.closed) return;
    this.gather.hold();
    this.ws.send(encodeLinkMessage(message));
  }

  private tellDesktop(): void {
    const connected = this.deps.hub.current() !== undefined;
    if (connected === this.lastDesktop) return;
    this.lastDesktop = connected;
    this.send({ type: 'desktop', connected });
  }

  private receive(data: RawData, isBinary: boolean): void {
    if (this.closed) return;
    const buffer = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    try {
      if (isBinary) this.receiveData(buffer);
      else this.receiveControl(buffer.toString('utf8'));
    } catch (error) {
      if (!(error instanceof FlowControlError)) throw error;
      this.deps.logger.warn('api-backend broke flow control on the frame link; closing it', { detail: error.message });
      this.close(FLOW_CONTROL_CLOSE_CODE, FLOW_CONTROL_CLOSE_REASON);
      this.ws.pause();
    }
  }

  private receiveData(buffer: Buffer): void {
    if (isWholeFrame(buffer)) return this.receiveWhole(buffer);
    const frame = decodeData(buffer);
    if (!frame.ok) return this.reject(frame.error);
    const stream = this.streams.get(frame.value.id);
    if (!stream) return this.unknown(frame.value.id);
    stream.upstreamData(frame.value.payload);
  }

  private receiveWhole(buffer: Buffer): void {
    const frame = decodeWhole(buffer);
    if (!frame.ok) return this.reject(frame.error, frame.id);
    const { head, body } = frame.value;
    if (head.type !== 'http_request') return this.reject('a whole frame from api-backend must be a request', head.id);
    this.open(head, body);
  }

  private receiveControl(text: string): void {
    const parsed = parseLinkMessage(text);
    if (!parsed.ok) return this.reject(parsed.error);
    const message = parsed.value;
    if (!this.greeted) {
      if (message.type !== 'hello') return this.close(1002, 'the frame link opens with hello');
      if (message.version !== this.deps.config.protocolVersion) {
        const reason = linkVersionMismatch(this.deps.config.protocolVersion, message.version, 'streaming-proxy');
        this.deps.logger.error('refused a frame link of another protocol version', { reason });
        return this.close(LINK_VERSION_CLOSE_CODE, reason);
      }
      this.greeted = true;
      this.acceptsWhole = message.whole === true;
      return;
    }
    switch (message.type) {
      case 'http_request':
        return this.open(message);
      case 'window':
        return this.withStream(message.id, (stream) => stream.upstreamWindow(message.bytes));
      case 'end':
        return this.withStream(message.id, (stream) => stream.upstreamEnd());
      case 'cancel':
        // A cancel may cross the stream's end in flight: nothing to answer.
        this.streams.get(message.id)?.upstreamCancel('client disconnected');
        return;
      case 'ping':
        return this.send({ type: 'pong', ts: message.ts });
      case 'pong':
        return;
      default:
        return this.reject(`${message.type} is not sent by api-backend`);
    }
  }

  /** `body` is a whole frame's body: the request's entire body, outside the stream's credit. */
  private open(request: HttpRequestMessage, body?: Buffer): void {
    if (this.streams.has(request.id)) return this.reject(`stream ${request.id} is already open`);
    if (request.headers[BRIDGE_CALL_HEADER] !== undefined) return this.openBridgeCall(request, body);
    const { limits, hub, config, logger } = this.deps;
    const declared = body ? body.byteLength : Number(request.headers['content-length'] ?? 0);
    const refused = limits.admitStream(Number.isFinite(declared) ? declared : 0);
    if (refused) {
      logger.debug('request refused by a user limit', { code: refused.code });
      return sendErrorAnswer(this, request.id, refused);
    }
    const link = hub.current();
    if (!link) return this.openToShare(request, body);
    let unavailable: CatalogueError | undefined;
    if (link.queueFull) unavailable = new CatalogueError('queue_full', errorMessage('queue_full'));
    else if (link.correlator.full) unavailable = new CatalogueError('too_many_streams', errorMessage('too_many_streams', { max: config.maxStreamsPerTunnel }));
    if (unavailable) {
      limits.releaseStream();
      return sendErrorAnswer(this, request.id, unavailable);
    }
    const stream = new RelayedStream(request.id, this, link, this.streamOptions(request.id));
    this.streams.set(request.id, stream);
    stream.start(request, body);
  }

  /** A polling bridge's own call: this proxy answers it; it is no stream of the user's limits. */
  private openBridgeCall(request: HttpRequestMessage, body?: Buffer): void {
    const call = new BridgeCall(request.id, this, () => this.streams.delete(request.id));
    this.streams.set(request.id, call);
    call.start(request, this.deps.bridge, this.deps.logger, body);
  }

  /** No desktop is connected: the user's zrok share answers, if one is registered and healthy. */
  private openToShare(request: HttpRequestMessage, body?: Buffer): void {
    const stream = new ShareStream(request.id, this, this.streamOptions(request.id));
    this.streams.set(request.id, stream);
    stream.start(request, this.deps.zrok, body);
  }

  /** What every stream of this link is held to; its end frees its entry and its slot. */
  private streamOptions(id: string): RelayedStreamOptions {
    const { limits, config, stats, logger } = this.deps;
    return {
      requestTimeoutMs: config.requestTimeoutMs,
      maxBodyBytes: limits.maxBodyBytes,
      tooLarge: () => limits.tooLargeError(),
      stats,
      logger,
      onDone: () => {
        this.streams.delete(id);
        limits.releaseStream();
      },
    };
  }

  private withStream(id: string, act: (stream: UpstreamStream) => void): void {
    const stream = this.streams.get(id);
    if (stream) act(stream);
    else this.unknown(id);
  }

  private unknown(id: string): void {
    this.send({ type: 'error', id, code: TunnelErrorCode.UnknownStream, message: `no open stream ${id} on this link` });
  }

  /** A bad message: answered with bad_message, for the stream `id` when it named one it does not own. */
  private reject(reason: string, id?: string): void {
    this.deps.logger.warn('rejected a malformed frame link message', { reason });
    // A stream already open under that id keeps going: the bad frame was not its own doing.
    const forStream = id !== undefined && !this.streams.has(id) ? id : undefined;
    this.send({ type: 'error', ...(forStream === undefined ? {} : { id: forStream }), code: TunnelErrorCode.BadMessage, message: reason });
  }

  private close(code: number, reason: string): void {
    if (this.closed) return;
    this.ws.close(code, reason);
    setTimeout(() => this.ws.terminate(), 2000).unref();
    this.gone();
  }

  private gone(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    for (const stream of [...this.streams.values()]) stream.upstreamCancel('the frame link closed');
  }
}
