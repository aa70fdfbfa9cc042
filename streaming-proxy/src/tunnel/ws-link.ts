/**
 * The desktop's WebSocket tunnel, as seen by the proxy.
 *
 * Incoming frames are validated here and only here: a text frame must be a valid control message,
 * a binary frame a valid data frame. A bad frame is answered with an `error` message and the
 * tunnel stays up; a desktop that keeps sending them is closed with 1008. Liveness is WebSocket
 * ping/pong: a desktop that misses a whole ping interval is dropped, failing its open streams.
 * The same pings time the tunnel's round trip (round-trip.ts); the first goes out at connect, so
 * status shows it within moments rather than after a whole interval.
 *
 * A desktop that breaks flow control (data past a stream's credit, or a `window` granting more
 * than was sent) is closed at once with 1008 "flow control violated", and the proxy stops reading
 * its socket: a flood is never buffered, and only this link's streams fail.
 *
 * The credential that opened the tunnel has a deadline (credentials/deadline.ts): a `token`
 * message renews it once api-backend has verified the new token for this same user; a refused
 * one is answered with an `error` and changes nothing. Past the deadline and its grace the tunnel
 * is closed with TOKEN_EXPIRED_CLOSE (4401).
 *
 * A bridge that offered whole frames on its upgrade (tunnel-whole.ts) gets short requests as one
 * binary message and may answer the same way; from any other bridge a whole frame is a bad frame.
 * A whole frame that fails to decode (a body past the inline limit, a bad head) is refused like
 * any bad frame, and the stream it names, if any, fails at once instead of waiting for its timeout.
 */
import type { WebSocket, RawData } from 'ws';
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
  parseControl,
  RenewalErrorCode,
  TOKEN_EXPIRED_CLOSE,
  TunnelErrorCode,
  type ControlMessage,
  type WholeHead,
  type Corkable,
  type GrowingWindows,
  WriteGather,
} from '@ctll/protocol';
import { CredentialDeadline } from '../credentials/deadline';
import type { VerifyRenewal } from '../credentials/renewal-client';
import { Correlator } from './correlator';
import { LinkCounters } from './link-counters';
import { RoundTrip } from './round-trip';
import type { DesktopLink } from './desktop-link';
import type { Logger } from '../logger';

/** Bad frames tolerated on one tunnel before it is closed (1008, policy violation). */
const MAX_BAD_FRAMES = 32;
/** Past this much unsent output a desktop is not reading: its pings go unanswered rather than pile up. */
const PONG_BUFFER_LIMIT = 256 * 1024;

export interface WsLinkOptions {
  id: string;
  client: string;
  pingIntervalMs: number;
  maxStreams: number;
  logger: Logger;
  /** When the credential that opened the tunnel expires (ms since the epoch); undefined: never. */
  credentialExpiresAt?: number;
  /** How long past its credential's expiry a tunnel stays open without a renewal. */
  tokenGraceMs: number;
  /** The bridge offered whole frames on its upgrade (and was told this proxy takes them). */
  whole: boolean;
  /** Both ends declared growing windows on the upgrade (stream-window.ts); undefined: fixed windows. */
  windows?: GrowingWindows;
  verifyRenewal: VerifyRenewal;
  onClose: (link: WsLink, code: number, reason: string) => void;
  onTraffic: (direction: 'in' | 'out', bytes: number) => void;
}

export class WsLink implements DesktopLink {
  readonly transport = 'ws' as const;
  readonly id: string;
  readonly client: string;
  readonly connectedAt = Date.now();
  readonly correlator: Correlator;
  readonly counters = new LinkCounters();
  readonly roundTrip = new RoundTrip();
  private alive = true;
  private badFrames = 0;
  private readonly pinger: NodeJS.Timeout;
  private readonly deadline: CredentialDeadline;
  /** A renewal being checked by api-backend: one at a time, so a flood of them costs one check. */
  private renewing = false;
  private isClosed = false;

  /** The turn's messages leave in one socket write (protocol/src/write-gather.ts). */
  private readonly gather: WriteGather;

  constructor(
    private readonly ws: WebSocket,
    private readonly options: WsLinkOptions,
    /** The tunnel's socket, to gather its writes (undefined: every message is a write of its own). */
    socket?: Corkable,
  ) {
    this.gather = new WriteGather(socket);
    this.id = options.id;
    this.client = options.client;
    this.correlator = new Correlator(`${options.id}.`, options.maxStreams, (message) =>
      options.logger.warn(message, { link: this.id }),
    );
    ws.on('message', (data, isBinary) => this.receive(data, isBinary));
    ws.on('pong', (payload) => {
      this.alive = true;
      this.roundTrip.pong(payload);
    });
    ws.on('close', (code, reason) => this.closedBy(code, reason.toString()));
    ws.on('error', (error) => options.logger.warn('tunnel socket error', { link: this.id, error: error.message }));
    this.pinger = setInterval(() => this.checkAlive(), options.pingIntervalMs);
    this.pinger.unref();
    this.ping();
    this.deadline = new CredentialDeadline(options.credentialExpiresAt, options.tokenGraceMs, () => this.expired());
  }

  /** A WebSocket has no queue of its own: flow control bounds each stream. */
  readonly queueFull = false;

  get acceptsWhole(): boolean {
    return this.options.whole;
  }

  get windows(): GrowingWindows | undefined {
    return this.options.windows;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  sendControl(message: ControlMessage): void {
    if (this.isClosed) return;
    if (message.type === 'pong' && this.ws.bufferedAmount > PONG_BUFFER_LIMIT) return;
    this.gather.hold();
    this.ws.send(encodeControl(message));
  }

  sendData(id: string, payload: Buffer): void {
    if (this.isClosed) return;
    this.options.onTraffic('out', payload.byteLength);
    this.gather.hold();
    this.ws.send(encodeData(id, payload), { binary: true });
  }

  sendWhole(head: WholeHead, body: Buffer): boolean {
    if (this.isClosed || !this.options.whole) return false;
    const frame = encodeWhole(head, body);
    if (!frame) return false;
    this.options.onTraffic('out', body.byteLength);
    this.gather.hold();
    this.ws.send(frame, { binary: true });
    return true;
  }

  close(code: number, reason: string): void {
    if (this.isClosed) return;
    this.ws.close(code, reason);
    // A peer that does not finish the closing handshake must not hold its streams hostage.
    setTimeout(() => this.ws.terminate(), 2000).unref();
    this.closedBy(code, reason);
  }

  private receive(data: RawData, isBinary: boolean): void {
    if (this.isClosed) return;
    try {
      this.dispatch(data, isBinary);
    } catch (error) {
      if (!(error instanceof FlowControlError)) throw error;
      this.violated(error.message);
    }
  }

  private dispatch(data: RawData, isBinary: boolean): void {
    // ws hands over a single Buffer unless the peer fragmented the message.
    const buffer = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    if (isBinary && isWholeFrame(buffer)) return this.receiveWhole(buffer);
    if (isBinary) {
      const frame = decodeData(buffer);
      if (!frame.ok) return this.rejectFrame(frame.error);
      this.options.onTraffic('in', frame.value.payload.byteLength);
      this.correlator.handleData(frame.value.id, frame.value.payload);
      return;
    }
    const message = parseControl(buffer.toString('utf8'));
    if (!message.ok) return this.rejectFrame(message.error);
    if (message.value.type === 'token') return this.renew(message.value.token);
    this.correlator.handleControl(message.value, this);
  }

  private receiveWhole(buffer: Buffer): void {
    const frame = decodeWhole(buffer);
    const refusal = !this.options.whole ? 'a whole frame from a bridge that did not offer them' : frame.ok ? undefined : frame.error;
    if (refusal !== undefined) {
      // The stream it names would otherwise wait out its whole timeout for an answer that came and was refused.
      const id = frame.ok ? frame.value.head.id : frame.id;
      if (id !== undefined) {
        this.correlator.handleControl({ type: 'error', id, code: TunnelErrorCode.BadMessage, message: `the desktop sent a malformed answer: ${refusal}` }, this);
      }
      return this.rejectFrame(refusal);
    }
    if (!frame.ok) return;
    this.options.onTraffic('in', frame.value.body.byteLength);
    this.correlator.handleWhole(frame.value, this);
  }

  private renew(token: string): void {
    if (this.renewing) {
      this.sendControl({ type: 'error', code: RenewalErrorCode.Unavailable, message: 'a renewal is already being checked; send the next one after it' });
      return;
    }
    this.renewing = true;
    void this.options.verifyRenewal(token).then((verdict) => {
      this.renewing = false;
      if (this.isClosed) return;
      if (verdict.accepted) {
        this.deadline.set(verdict.expiresAt ?? undefined);
        this.options.logger.debug('tunnel credential renewed', { link: this.id, expiresAt: verdict.expiresAt });
        return;
      }
      this.options.logger.info('refused a tunnel renewal', { link: this.id, code: verdict.code });
      this.sendControl({ type: 'error', code: verdict.code, message: verdict.message });
    });
  }

  private expired(): void {
    this.options.logger.info('tunnel credential expired and was not renewed; closing it', { link: this.id });
    this.close(TOKEN_EXPIRED_CLOSE.code, TOKEN_EXPIRED_CLOSE.reason);
  }

  private rejectFrame(reason: string): void {
    this.badFrames += 1;
    this.options.logger.warn('rejected a malformed tunnel message', { link: this.id, reason });
    if (this.badFrames > MAX_BAD_FRAMES) {
      this.close(1008, 'too many malformed messages');
      return;
    }
    this.sendControl({ type: 'error', code: TunnelErrorCode.BadMessage, message: reason });
  }

  /** The desktop broke flow control: close now, and read nothing more of what it floods us with. */
  private violated(detail: string): void {
    this.options.logger.warn('desktop broke flow control; closing its tunnel', { link: this.id, detail });
    this.close(FLOW_CONTROL_CLOSE_CODE, FLOW_CONTROL_CLOSE_REASON);
    this.ws.pause();
  }

  private checkAlive(): void {
    if (!this.alive) {
      this.options.logger.info('desktop missed a ping interval; dropping the tunnel', { link: this.id });
      this.ws.terminate();
      this.closedBy(1006, 'ping timeout');
      return;
    }
    this.alive = false;
    this.ping();
  }

  private ping(): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    this.ws.ping(this.roundTrip.ping());
  }

  private closedBy(code: number, reason: string): void {
    if (this.isClosed) return;
    this.isClosed = true;
    clearInterval(this.pinger);
    this.deadline.stop();
    this.correlator.failAll('desktop_disconnected', 'the desktop disconnected before it finished answering');
    this.options.onClose(this, code, reason);
  }
}
