/**
 * The stream table of one link (one tunnel, see docs/ARCHITECTURE.md's glossary).
 *
 * Each relayed HTTP exchange is a stream with an id unique on its link. The correlator owns
 * the table: it hands out ids, routes every message the bridge sends to the exchange it belongs
 * to, and when the tunnel ends it fails every exchange still open on it. It does not know
 * about HTTP or sockets; exchanges and links plug in through the interfaces below.
 */
import {
  TunnelErrorCode,
  type ControlMessage,
  type HttpResponseMessage,
  type TargetHealth,
  type TargetReportMessage,
  type WholeFrame,
} from '@ctll/protocol';

/** What one exchange hears from the bridge. */
export interface StreamHandler {
  onResponse(message: HttpResponseMessage): void;
  onData(payload: Buffer): void;
  onEnd(): void;
  /** The desktop granted more credit for the request body. */
  onWindow(bytes: number): void;
  /** The desktop's credit for the answer ran out (it is sent only where windows grow, stream-window.ts). */
  onBlocked(): void;
  /** The stream failed: the bridge said so, or the tunnel went away. */
  onError(code: string, message: string): void;
}

/** How the correlator talks back; a WebSocket link and a polling link both provide these. */
export interface StreamSender {
  sendControl(message: ControlMessage): void;
  sendData(id: string, payload: Buffer): void;
}

export class Correlator {
  private readonly streams = new Map<string, StreamHandler>();
  private nextId = 0;
  /** The desktop's latest report of its local LLM server. */
  target: TargetHealth | undefined;

  constructor(
    private readonly prefix: string,
    private readonly maxStreams: number,
    private readonly onProtocolError: (message: string) => void,
  ) {}

  get size(): number {
    return this.streams.size;
  }

  has(id: string): boolean {
    return this.streams.has(id);
  }

  get full(): boolean {
    return this.streams.size >= this.maxStreams;
  }

  open(handler: StreamHandler): string {
    const id = `${this.prefix}${(this.nextId++).toString(36)}`;
    this.streams.set(id, handler);
    return id;
  }

  /** Forgets a stream; later messages for it are dropped (they may cross a cancel in flight). */
  close(id: string): void {
    this.streams.delete(id);
  }

  handleControl(message: ControlMessage, reply: StreamSender): void {
    switch (message.type) {
      case 'http_response':
        this.streams.get(message.id)?.onResponse(message);
        return;
      case 'end':
        this.streams.get(message.id)?.onEnd();
        return;
      case 'window':
        this.streams.get(message.id)?.onWindow(message.bytes);
        return;
      case 'blocked':
        this.streams.get(message.id)?.onBlocked();
        return;
      case 'error':
        if (message.id === undefined) this.onProtocolError(`desktop reported ${message.code}: ${message.message}`);
        else this.streams.get(message.id)?.onError(message.code, message.message);
        return;
      case 'cancel':
        this.streams.get(message.id)?.onError('cancelled_by_desktop', message.reason ?? 'the desktop cancelled the request');
        return;
      case 'ping':
        reply.sendControl({ type: 'pong', ts: message.ts });
        return;
      case 'pong':
        return;
      case 'target':
        this.target = { ...withoutType(message), checkedAt: new Date().toISOString() };
        return;
      case 'token':
        // A WebSocket link handles renewals before this; a polling bridge's requests carry their token.
        return;
      case 'http_request':
        // Requests only flow towards the desktop.
        reply.sendControl({
          type: 'error',
          id: message.id,
          code: TunnelErrorCode.BadMessage,
          message: 'http_request is only sent by the relay',
        });
        return;
    }
  }

  handleData(id: string, payload: Buffer): void {
    this.streams.get(id)?.onData(payload);
  }

  /**
   * A whole answer: the three events it stands for (tunnel-whole.ts), so an exchange handles it as
   * it handles the streamed form. Its body counts against the stream's first window like any data.
   */
  handleWhole({ head, body }: WholeFrame, reply: StreamSender): void {
    if (head.type === 'http_request') {
      reply.sendControl({ type: 'error', id: head.id, code: TunnelErrorCode.BadMessage, message: 'http_request is only sent by the relay' });
      return;
    }
    const handler = this.streams.get(head.id);
    if (!handler) return;
    handler.onResponse({ ...head, end: body.byteLength === 0 });
    if (body.byteLength === 0) return;
    handler.onData(body);
    handler.onEnd();
  }

  /** Fails every open stream, e.g. because the tunnel closed. */
  failAll(code: string, message: string): void {
    const handlers = [...this.streams.values()];
    this.streams.clear();
    for (const handler of handlers) handler.onError(code, message);
  }
}

function withoutType({ type: _type, ...rest }: TargetReportMessage): Omit<TargetReportMessage, 'type'> {
  return rest;
}
