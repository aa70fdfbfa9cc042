/**
 * The WebSocket tunnel: one connection to `<server>/ws/tunnel`, from handshake to close.
 *
 * Frames are validated here and only here (text: a control message; binary: a data frame), then
 * handed to the connection's StreamTable. A bad frame is answered with `bad_message` and the
 * tunnel stays up. Liveness: the relay pings every 15 s and `ws` answers those pings itself; a
 * watchdog also probes with a ping of its own after a third of the timeout in silence, and once
 * nothing at all (no frame, no ping, no pong) has arrived for `pingTimeoutMs` the connection is
 * taken for dead and terminated, so the bridge's loop reconnects instead of waiting on a socket
 * that a NAT box or a sleeping laptop silently dropped.
 *
 * A relay that breaks flow control (request body past the credit we gave, or a `window` granting
 * more than we sent) gets the connection closed with 1008 "flow control violated": we stop reading
 * at once, so nothing it floods is buffered, and the bridge's loop connects again.
 *
 * The token the tunnel opened with is renewed in-band: ahead of its expiry (see renewalDelay) the
 * connection asks the token source for the current one and, if it is new, sends it as
 * `{type: 'token'}`. The relay closes a tunnel whose token ran out with TOKEN_EXPIRED_CLOSE; a
 * refused renewal comes back as an `error` the bridge reports, and is tried again until then.
 *
 * Whole frames (protocol/src/tunnel-whole.ts): the upgrade offers them; a relay that takes them says
 * so on its 101, and only then do short answers leave as one whole frame (short-answer.ts). A whole
 * request from the relay is taken only if we offered them; one that fails to decode is refused as a
 * bad message, naming its stream when it can, and the other streams go on.
 */
import type http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import WebSocket, { type RawData } from 'ws';
import {
  decodeData,
  decodeWhole,
  encodeControl,
  encodeData,
  encodeWhole,
  FLOW_CONTROL_CLOSE_CODE,
  FLOW_CONTROL_CLOSE_REASON,
  FlowControlError,
  isWholeFrame,
  MAX_FRAME_BYTES,
  parseControl,
  PROTOCOL_VERSION,
  PROTOCOL_VERSION_HEADER,
  saysWhole,
  TunnelErrorCode,
  WHOLE_FRAMES_HEADER,
  WHOLE_FRAMES_HEADER_VALUE,
  growingWindows,
  MAX_STREAM_WINDOW,
  STREAM_WINDOW_HEADER,
  type GrowingWindows,
  type ControlMessage,
  type WholeHead,
  WriteGather,
} from '@ctll/protocol';
import { HandshakeTimeoutError, parseRelayError, UpgradeRejectedError } from './errors';
import { StreamTable, type StreamPort, type TunnelSender } from './stream-table';
import type { ConnectionEvents, Transport, TransportSetup, TunnelConnection } from './transport';
import { wsStreamPort, type FrameSender } from './ws-stream';
import { maskFor } from './ws-mask';
import { RenewalTimer } from './auth/renewal';
import { holdShortAnswers } from './short-answer';

/** The most of a refused upgrade's body we read: enough for the relay's `{error: {code, message}}`. */
const MAX_REJECTION_BODY = 8 * 1024;
export const connectWebSocket: Transport = (setup, events) => new WsConnection(setup, events);

class WsConnection implements TunnelConnection, TunnelSender, FrameSender {
  private readonly ws: WebSocket;
  private readonly streams: StreamTable;
  private readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;
  private isOpen = false;
  private ended = false;
  private closingByUs = false;
  /** Why we ended it ourselves (watchdog), or why the relay refused it; wins over the socket's own story. */
  private failure: string | undefined;
  private rejection: UpgradeRejectedError | undefined;
  private lastError: Error | undefined;
  private lastSeen = Date.now();
  private probed = false;
  private watchdog: NodeJS.Timeout | undefined;
  /** True once a TCP (and TLS) connection to the relay was made: tells a blocked handshake from an unreachable relay. */
  private reachedRelay = false;
  private draining = false;
  /** The token the relay holds for this tunnel: the one it opened with, then the last one sent. */
  private token: string;
  private readonly renewal: RenewalTimer;
  /** The relay answered our offer: it takes whole frames on this connection. */
  private relayTakesWhole = false;
  /** Both ends grow windows (stream-window.ts); undefined: fixed windows. */
  private windows: GrowingWindows | undefined;
  /** The turn's messages leave in one socket write (protocol/src/write-gather.ts); set once upgraded. */
  private gather = new WriteGather(undefined);

  constructor(
    private readonly setup: TransportSetup,
    private readonly events: ConnectionEvents,
  ) {
    this.token = setup.token;
    this.renewal = new RenewalTimer(
      setup.tokens,
      () => this.token,
      (token) => {
        if (this.ws.readyState !== WebSocket.OPEN) return;
        this.token = token;
        this.ws.send(encodeControl({ type: 'token', token }));
      },
      (message) => this.events.notice(message),
    );
    this.closedPromise = new Promise((resolve) => (this.resolveClosed = resolve));
    this.streams = new StreamTable(setup.targets, this, (outcome) => {
      if (outcome === 'served') events.served();
      this.closeIfDrained();
    });
    this.ws = new WebSocket(setup.tunnelUrl, {
      headers: {
        ...setup.upgradeHeaders,
        authorization: `Bearer ${setup.token}`,
        'user-agent': setup.userAgent,
        [PROTOCOL_VERSION_HEADER]: String(PROTOCOL_VERSION),
        ...(setup.wholeFrames ? { [WHOLE_FRAMES_HEADER]: WHOLE_FRAMES_HEADER_VALUE } : {}),
        ...(setup.growWindows ? { [STREAM_WINDOW_HEADER]: String(MAX_STREAM_WINDOW) } : {}),
      },
      // Tokens are small and latency matters more than bytes; the relay does not offer it either.
      perMessageDeflate: false,
      maxPayload: MAX_FRAME_BYTES,
      generateMask: maskFor(setup.tunnelUrl, setup.relayAgent !== undefined),
      handshakeTimeout: setup.handshakeTimeoutMs,
      // A redirect would carry the token to wherever it points; the relay never sends one.
      followRedirects: false,
      agent: setup.relayAgent,
      // Through a proxy the agent makes the socket; direct, we make it, to notice when it connects.
      createConnection: setup.relayAgent ? undefined : (this.connectDirect.bind(this) as typeof net.createConnection),
    });
    this.ws.on('unexpected-response', (_req, res) => this.onRejected(res));
    this.ws.on('upgrade', (res) => {
      this.relayTakesWhole = setup.wholeFrames && saysWhole(res.headers[WHOLE_FRAMES_HEADER]);
      this.windows = setup.growWindows ? growingWindows(res.headers[STREAM_WINDOW_HEADER]) : undefined;
      this.gather = new WriteGather(res.socket);
    });
    this.ws.on('open', () => this.onOpen());
    this.ws.on('message', (data, isBinary) => this.receive(data, isBinary));
    this.ws.on('ping', () => this.seen());
    this.ws.on('pong', () => this.seen());
    this.ws.on('error', (error) => {
      this.lastError ??= error;
    });
    this.ws.on('close', (code, reason) => this.onClose(code, reason.toString()));
  }

  get activeStreams(): number {
    return this.streams.size;
  }

  openStream(id: string): StreamPort {
    const port = wsStreamPort(id, this, this.windows);
    return this.relayTakesWhole ? holdShortAnswers(id, port, (head, body) => this.sendWhole(head, body)) : port;
  }

  sendControl(message: ControlMessage): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.gather.hold();
    this.ws.send(encodeControl(message));
  }

  sendData(id: string, payload: Buffer): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.gather.hold();
    this.ws.send(encodeData(id, payload), { binary: true });
  }

  /** A short answer as one whole frame; false (nothing sent) when its head is too big for one. */
  private sendWhole(head: WholeHead, body: Buffer): boolean {
    const frame = encodeWhole(head, body);
    if (!frame) return false;
    if (this.ws.readyState !== WebSocket.OPEN) return true;
    this.gather.hold();
    this.ws.send(frame, { binary: true });
    return true;
  }

  close(code: number, reason: string): Promise<void> {
    if (this.ended) return Promise.resolve();
    this.closingByUs = true;
    this.streams.abortAll();
    if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
    else this.ws.close(code, reason);
    // A relay that does not finish the closing handshake must not hold up a shutdown.
    const timer = setTimeout(() => this.ws.terminate(), this.setup.closeTimeoutMs);
    return this.closedPromise.finally(() => clearTimeout(timer));
  }

  /** Finishes the streams in flight, then closes: the bridge switched to another connection. */
  drain(): void {
    this.draining = true;
    this.closeIfDrained();
  }

  private closeIfDrained(): void {
    if (this.draining && this.streams.size === 0) void this.close(1000, 'bridge switched connections');
  }

  /** What ws would do (net or TLS connect, with SNI for host names), plus noting when the connection is made. */
  private connectDirect(options: net.NetConnectOpts & tls.ConnectionOptions & { host?: string }): net.Socket {
    const secure = this.setup.tunnelUrl.protocol === 'wss:';
    const host = options.host ?? '';
    const socket = secure
      ? tls.connect({ ...options, path: undefined, servername: options.servername ?? (net.isIP(host) ? '' : host) } as tls.ConnectionOptions)
      : net.connect(options);
    socket.once(secure ? 'secureConnect' : 'connect', () => (this.reachedRelay = true));
    return socket;
  }

  private onOpen(): void {
    this.isOpen = true;
    this.seen();
    this.armWatchdog();
    this.renewal.start();
    this.events.opened();
  }

  private receive(data: RawData, isBinary: boolean): void {
    if (this.failure !== undefined) return;
    this.seen();
    // ws hands over a single Buffer unless the peer fragmented the message.
    const buffer = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    try {
      if (isBinary && isWholeFrame(buffer)) return this.receiveWhole(buffer);
      if (isBinary) {
        const frame = decodeData(buffer);
        if (!frame.ok) return this.rejectFrame(frame.error);
        this.streams.handleData(frame.value.id, frame.value.payload);
        return;
      }
      const message = parseControl(buffer.toString('utf8'));
      if (!message.ok) return this.rejectFrame(message.error);
      if (message.value.type === 'error' && message.value.id === undefined) {
        this.events.notice(`the relay reported ${message.value.code}: ${message.value.message}`);
      }
      this.streams.handleControl(message.value);
    } catch (error) {
      if (error instanceof FlowControlError) return this.violated(error.message);
      // A fault of ours in one message must not take down the tunnel and every stream on it.
      this.events.notice(`internal error while handling a relay message: ${(error as Error).message}`);
    }
  }

  private receiveWhole(buffer: Buffer): void {
    if (!this.setup.wholeFrames) return this.rejectFrame('a whole frame, which this bridge did not offer');
    const frame = decodeWhole(buffer);
    if (!frame.ok) return this.rejectFrame(frame.error, frame.id);
    this.streams.handleWhole(frame.value);
  }

  /** The relay broke flow control: drop the connection (not as our own shutdown, so the loop reconnects). */
  private violated(detail: string): void {
    this.failure = `the relay broke flow control (${detail})`;
    this.streams.abortAll();
    this.ws.close(FLOW_CONTROL_CLOSE_CODE, FLOW_CONTROL_CLOSE_REASON);
    this.ws.pause();
    setTimeout(() => this.ws.terminate(), this.setup.closeTimeoutMs).unref();
  }

  /** `id`: the stream the frame named, which then fails at the relay at once instead of by its timeout. */
  private rejectFrame(reason: string, id?: string): void {
    this.events.notice(`rejected a malformed message from the relay: ${reason}`);
    this.sendControl({ type: 'error', ...(id === undefined ? {} : { id }), code: TunnelErrorCode.BadMessage, message: reason });
  }

  /** The relay answered the upgrade with an HTTP status; read its JSON error body, then give up. */
  private onRejected(res: http.IncomingMessage): void {
    const status = res.statusCode ?? 0;
    const statusText = res.statusMessage ?? '';
    this.rejection = new UpgradeRejectedError(status, statusText);
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (chunk: Buffer) => {
      if (size >= MAX_REJECTION_BODY) return;
      chunks.push(chunk);
      size += chunk.byteLength;
    });
    res.on('end', () => {
      const body = parseRelayError(Buffer.concat(chunks).subarray(0, MAX_REJECTION_BODY).toString('utf8'));
      if (body) this.rejection = new UpgradeRejectedError(status, statusText, body.code, body.message);
      this.ws.terminate();
    });
    res.on('error', () => this.ws.terminate());
  }

  private seen(): void {
    this.lastSeen = Date.now();
    this.probed = false;
  }

  private armWatchdog(): void {
    const timeout = this.setup.pingTimeoutMs;
    const probeAfter = Math.floor(timeout / 3);
    const silent = Date.now() - this.lastSeen;
    if (silent >= timeout) {
      this.failure = `no sign of life from the relay for ${formatSeconds(timeout)}`;
      this.ws.terminate();
      return;
    }
    if (silent >= probeAfter && !this.probed) {
      this.probed = true;
      this.ws.ping();
    }
    const nextCheck = this.probed ? timeout - silent : probeAfter - silent;
    this.watchdog = setTimeout(() => this.armWatchdog(), Math.max(nextCheck, 10));
    this.watchdog.unref();
  }

  private onClose(code: number, reason: string): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.watchdog);
    this.renewal.stop();
    this.streams.abortAll();
    this.events.closed({
      reason: this.describeClose(code, reason),
      wasOpen: this.isOpen,
      byUs: this.closingByUs,
      closeCode: this.isOpen && !this.closingByUs ? code : undefined,
      error: this.rejection ?? this.handshakeTimeout() ?? this.lastError,
    });
    this.resolveClosed();
  }

  /** ws reports a handshake that took too long as a plain Error; ours says whether the relay was reached. */
  private handshakeTimeout(): HandshakeTimeoutError | undefined {
    if (this.isOpen || this.lastError?.message !== 'Opening handshake has timed out') return undefined;
    // Through a proxy, the socket to the proxy is made at once; what times out is what lies behind it.
    return new HandshakeTimeoutError(this.setup.handshakeTimeoutMs, this.reachedRelay || this.setup.relayAgent !== undefined);
  }

  private describeClose(code: number, reason: string): string {
    if (this.closingByUs) return 'closed by the bridge';
    if (this.rejection) return this.rejection.message;
    if (this.failure) return this.failure;
    if (this.isOpen) return `relay closed ${code}${reason ? ` ${reason}` : ''}`;
    const timeout = this.handshakeTimeout();
    if (timeout) return timeout.message;
    const error = this.lastError as NodeJS.ErrnoException | undefined;
    return `could not reach the relay at ${this.setup.tunnelUrl.host}: ${error?.code ?? error?.message ?? `closed ${code}`}`;
  }
}

function formatSeconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}
