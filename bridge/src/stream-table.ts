/**
 * The streams of one tunnel connection, by id, and the protocol's per-stream rules.
 *
 * Each `http_request` opens a stream: a LocalForwarder playing the request against the local
 * server, and a StreamPort through which its answer goes back. The port is the transport's part:
 * on the WebSocket it sends frames and keeps the protocol's two flow-control counters; on the
 * long-poll transport it is one streamed POST. Messages for a stream we no longer know are
 * dropped: they may cross a cancel or our own error in flight. The table knows nothing of
 * sockets; the transport hands it parsed messages and provides the ports. A relay that sends a
 * body past its credit, or grants more than we sent, makes a port throw FlowControlError; the
 * transport then drops the whole connection and the bridge connects again.
 */
import { TunnelErrorCode, type ControlMessage, type HttpRequestMessage, type WholeFrame } from '@ctll/protocol';
import { LocalForwarder, type Outcome, type ResponseSink } from './local-forwarder';
import type { LocalTargets } from './local-targets';

/** One stream's way back to the relay, as a transport provides it. */
export interface StreamPort extends ResponseSink {
  /** Request body bytes arrived from the relay; throws FlowControlError past the stream's credit. */
  received(bytes: number): void;
  /** The local server took `bytes` more of the request body (the relay may send more). */
  taken(bytes: number): void;
  /** The relay lets us send `bytes` more of the answer (a `window` message); throws FlowControlError for a forged grant. */
  grant(bytes: number): void;
  /** The relay ran out of credit for the request body (only where windows grow): ours may grow. */
  blocked(): void;
  /** Calls `done` once the answer's last frames have gone out (they may wait for credit). */
  whenFlushed(done: () => void): void;
  /** The stream is over, however it ended: release whatever the port holds. */
  dispose(): void;
}

export interface TunnelSender {
  /** A control message that belongs to no answer: a pong, or an error about a bad message. */
  sendControl(message: ControlMessage): void;
  /** Where stream `id`'s answer goes. */
  openStream(id: string): StreamPort;
}

interface Stream {
  forwarder: LocalForwarder;
  port: StreamPort;
  /** Set once the local answer is complete and its last frames wait for credit: ends the stream now. */
  release?: () => void;
}

export class StreamTable {
  private readonly streams = new Map<string, Stream>();

  constructor(
    private readonly targets: LocalTargets,
    private readonly sender: TunnelSender,
    private readonly onOutcome: (outcome: Outcome) => void,
  ) {}

  get size(): number {
    return this.streams.size;
  }

  has(id: string): boolean {
    return this.streams.has(id);
  }

  handleControl(message: ControlMessage): void {
    switch (message.type) {
      case 'http_request':
        this.open(message);
        return;
      case 'end':
        this.streams.get(message.id)?.forwarder.endBody();
        return;
      case 'cancel':
        this.abort(message.id);
        return;
      case 'window':
        this.streams.get(message.id)?.port.grant(message.bytes);
        return;
      case 'blocked':
        this.streams.get(message.id)?.port.blocked();
        return;
      case 'ping':
        this.sender.sendControl({ type: 'pong', ts: message.ts });
        return;
      case 'pong':
      case 'target': // only the bridge reports a target; nothing to do with one from the relay
        return;
      case 'error':
        // The relay gave up on one of our streams (it could not use what we sent): stop its work.
        if (message.id !== undefined) this.abort(message.id);
        return;
      case 'token':
        this.sender.sendControl({ type: 'error', code: TunnelErrorCode.BadMessage, message: 'token is only sent by the bridge' });
        return;
      case 'http_response':
        this.sender.sendControl({
          type: 'error',
          id: message.id,
          code: TunnelErrorCode.BadMessage,
          message: 'http_response is only sent by the bridge',
        });
        return;
    }
  }

  /** Throws FlowControlError when the relay sent past the stream's credit: the transport closes. */
  handleData(id: string, payload: Buffer): void {
    const stream = this.streams.get(id);
    if (!stream) return;
    stream.port.received(payload.byteLength);
    stream.forwarder.writeBody(payload);
  }

  /**
   * A whole request: the head, body and end it stands for (protocol/src/tunnel-whole.ts). Its body
   * counts against the stream's first window like any data; being below half a window, it never
   * brings a grant, which the relay would refuse (it spent no credit on it).
   */
  handleWhole({ head, body }: WholeFrame): void {
    if (head.type === 'http_response') {
      this.handleControl(head);
      return;
    }
    if (!this.open({ ...head, end: body.byteLength === 0 }) || body.byteLength === 0) return;
    this.handleData(head.id, body);
    this.streams.get(head.id)?.forwarder.endBody();
  }

  /** Aborts one local request (the local server sees its connection close). */
  abort(id: string): void {
    const stream = this.streams.get(id);
    if (stream?.release) stream.release();
    else stream?.forwarder.abort();
  }

  /** Aborts every local request, e.g. because the tunnel closed. */
  abortAll(): void {
    for (const id of [...this.streams.keys()]) this.abort(id);
  }

  /** False when no stream opened: its id was taken, or the request failed at once (and said so). */
  private open(request: HttpRequestMessage): boolean {
    const { id } = request;
    if (this.streams.has(id)) {
      this.sender.sendControl({ type: 'error', id, code: TunnelErrorCode.BadMessage, message: `stream ${id} is already open` });
      return false;
    }
    const port = this.sender.openStream(id);
    const forwarder = new LocalForwarder(
      request,
      this.targets,
      port,
      (bytes) => port.taken(bytes),
      (outcome) => {
        let released = false;
        const release = () => {
          if (released) return;
          released = true;
          this.streams.delete(id);
          port.dispose();
          this.onOutcome(outcome);
        };
        // A served answer stays in the table until its last frames got credit, so `window` still reaches it.
        const stream = this.streams.get(id);
        if (outcome === 'served' && stream) stream.release = release;
        if (outcome === 'served') port.whenFlushed(release);
        else release();
      },
    );
    // A request that could not even be made has already failed and reported itself.
    if (forwarder.finished) return false;
    this.streams.set(id, { forwarder, port });
    return true;
  }
}
