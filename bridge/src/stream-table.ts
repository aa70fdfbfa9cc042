/**
 * The streams of one tunnel connection, by id, and the protocol's per-stream rules.
 *
 * Each `http_request` opens a stream: a LocalForwarder plus the two flow-control counters of the
 * protocol. SendCredit limits the answer we send (the relay grants more with `window`);
 * ReceiveCredit gives the relay credit for the request body once the local request has taken it.
 * Messages for a stream we no longer know are dropped: they may cross a cancel or our own error
 * in flight. The table knows nothing of sockets; the transport hands it parsed messages and a
 * sender.
 */
import {
  chunkSlices,
  httpResponseSchema,
  ReceiveCredit,
  SendCredit,
  TunnelErrorCode,
  type ControlMessage,
  type HttpRequestMessage,
  type HttpResponseMessage,
} from '@ctll/protocol';
import { UnsendableHeadError } from './errors';
import { LocalForwarder, type LocalTarget, type Outcome, type ResponseSink } from './local-forwarder';

export interface TunnelSender {
  sendControl(message: ControlMessage): void;
  sendData(id: string, payload: Buffer): void;
}

/** Longest `message` an error may carry (errorSchema); a longer one would itself be rejected. */
const MAX_ERROR_MESSAGE = 2048;

export class StreamTable {
  private readonly streams = new Map<string, LocalForwarder>();
  /** Each stream's credit for sending its answer. */
  private readonly credits = new Map<string, SendCredit>();

  constructor(
    private readonly target: LocalTarget,
    private readonly sender: TunnelSender,
    private readonly onOutcome: (outcome: Outcome) => void,
  ) {}

  get size(): number {
    return this.streams.size;
  }

  handleControl(message: ControlMessage): void {
    switch (message.type) {
      case 'http_request':
        this.open(message);
        return;
      case 'end':
        this.streams.get(message.id)?.endBody();
        return;
      case 'cancel':
        this.streams.get(message.id)?.abort();
        return;
      case 'window':
        this.credits.get(message.id)?.grant(message.bytes);
        return;
      case 'ping':
        this.sender.sendControl({ type: 'pong', ts: message.ts });
        return;
      case 'pong':
        return;
      case 'error':
        // The relay gave up on one of our streams (it could not use what we sent): stop its work.
        if (message.id !== undefined) this.streams.get(message.id)?.abort();
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

  handleData(id: string, payload: Buffer): void {
    this.streams.get(id)?.writeBody(payload);
  }

  /** Aborts every local request, e.g. because the tunnel closed. */
  abortAll(): void {
    for (const forwarder of [...this.streams.values()]) forwarder.abort();
  }

  private open(request: HttpRequestMessage): void {
    const { id } = request;
    if (this.streams.has(id)) {
      this.sender.sendControl({ type: 'error', id, code: TunnelErrorCode.BadMessage, message: `stream ${id} is already open` });
      return;
    }
    const sendCredit = new SendCredit();
    const receiveCredit = new ReceiveCredit((bytes) => this.sender.sendControl({ type: 'window', id, bytes }));
    const forwarder = new LocalForwarder(
      request,
      this.target,
      this.sinkFor(id, sendCredit),
      (bytes) => receiveCredit.consumed(bytes),
      (outcome) => {
        this.streams.delete(id);
        this.credits.delete(id);
        sendCredit.clear();
        this.onOutcome(outcome);
      },
    );
    // A request that could not even be made has already failed and reported itself.
    if (forwarder.finished) return;
    this.streams.set(id, forwarder);
    this.credits.set(id, sendCredit);
  }

  private sinkFor(id: string, credit: SendCredit): ResponseSink {
    const sender = this.sender;
    return {
      head: (status, headers, end) => {
        const message: HttpResponseMessage = { type: 'http_response', id, status, headers, end };
        // The relay would reject a head it cannot carry (too many or too long headers) and leave the
        // caller waiting; the forwarder turns this throw into a target_failed error instead.
        const checked = httpResponseSchema.safeParse(message);
        if (!checked.success) throw new UnsendableHeadError(checked.error.issues[0]?.message ?? 'invalid response head');
        sender.sendControl(message);
      },
      data: (chunk) => {
        for (const slice of chunkSlices(chunk)) sender.sendData(id, slice);
        credit.spend(chunk.byteLength);
        return credit.open;
      },
      whenReady: (resume) => credit.whenOpen(resume),
      end: () => sender.sendControl({ type: 'end', id }),
      fail: (code, message) =>
        sender.sendControl({ type: 'error', id, code, message: message.slice(0, MAX_ERROR_MESSAGE) }),
    };
  }
}
