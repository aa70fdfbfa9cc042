/**
 * One HTTP exchange relayed to the desktop: the request (head, then its body as data frames) goes
 * down the link, and the answer streams back into the HTTP response as it arrives.
 *
 * Each direction is flow-controlled on its own: the request body is read only while the desktop
 * has granted credit, and credit for the answer goes back only once the HTTP response has taken
 * the bytes. REQUEST_TIMEOUT_MS measures silence (waiting for the answer to start, or a gap
 * between chunks), never the length of a generation. If the caller goes away, the desktop is told
 * to cancel, so the local model stops generating.
 *
 * The desktop's credit is checked, not trusted: an answer chunk past the window (plus the one
 * frame the protocol allows) or a `window` granting more than was sent throws FlowControlError,
 * which the link turns into closing itself. So an exchange never holds more than one window plus
 * one frame of the answer, however the desktop behaves.
 */
import { validateHeaderName, validateHeaderValue, type IncomingMessage, type ServerResponse } from 'node:http';
import {
  BodySender,
  CALLER_ONLY_HEADERS,
  endToEndHeaders,
  ReceiveCredit,
  type HttpResponseMessage,
  CatalogueError,
  type RelayError,
} from '@ctll/protocol';
import type { StreamHandler } from '../tunnel/correlator';
import type { DesktopLink } from '../tunnel/desktop-link';
import type { ProxyStats } from '../stats';
import type { Logger } from '../logger';
import { sendRelayError } from '../http/respond';

export interface ExchangeOptions {
  requestTimeoutMs: number;
  stats: ProxyStats;
  logger: Logger;
}

export class Exchange implements StreamHandler {
  private readonly id: string;
  private readonly body: BodySender;
  private readonly receiveCredit: ReceiveCredit;
  private readonly timer: NodeJS.Timeout;
  private started = false;
  private bodyWritten = false;
  private done = false;
  private undrained = 0;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly link: DesktopLink,
    private readonly options: ExchangeOptions,
  ) {
    this.id = link.correlator.open(this);
    this.body = new BodySender((slice) => this.link.sendData(this.id, slice));
    this.receiveCredit = new ReceiveCredit((bytes) => this.link.sendControl({ type: 'window', id: this.id, bytes }));
    this.timer = setTimeout(() => this.silenceTimeout(), options.requestTimeoutMs);
    options.stats.countRequest();
    link.counters.requests += 1;
    options.stats.activeExchanges += 1;
    options.stats.touch();
  }

  /** Sends the request head and starts streaming the body. `path` is what the desktop asks its server for. */
  start(path: string): void {
    const hasBody = requestHasBody(this.req);
    this.res.on('close', () => {
      if (!this.done) this.callerGone();
    });
    this.link.sendControl({
      type: 'http_request',
      id: this.id,
      method: this.req.method ?? 'GET',
      path,
      headers: endToEndHeaders(this.req.headers, CALLER_ONLY_HEADERS),
      end: !hasBody,
    });
    if (hasBody) this.upload();
    else this.req.resume();
  }

  onResponse(message: HttpResponseMessage): void {
    if (this.done || this.started) return;
    if (message.status < 200) {
      // A 1xx is no answer: written as the head, the caller would go on waiting for the real one.
      this.link.sendControl({ type: 'cancel', id: this.id, reason: 'informational response head' });
      this.fail('bad_response', `the desktop answered ${message.status}, which is not a final answer`);
      return;
    }
    try {
      // Checked before writeHead: a writeHead that throws half way leaves the response marked
      // with the desktop's status (a 204 has no body), and the error sent after it would then
      // announce a body it never delivers, keeping the caller waiting on a live connection.
      checkHeaders(message.headers);
      this.res.writeHead(message.status, message.headers);
    } catch (error) {
      this.link.sendControl({ type: 'cancel', id: this.id, reason: 'invalid response head' });
      this.fail('bad_response', `the desktop sent an invalid response head: ${(error as Error).message}`);
      return;
    }
    this.started = true;
    this.timer.refresh();
    // Headers go out now, not with the first chunk: a client sees the status while the model
    // thinks. Only when the first chunk is already here (frames read together) do they share its
    // write: the check runs after the frames of this read are handled.
    process.nextTick(() => {
      if (!this.bodyWritten && !this.res.writableEnded && !this.res.destroyed) this.res.flushHeaders();
    });
    if (message.end) this.finish();
  }

  onData(payload: Buffer): void {
    if (this.done) return;
    // Throws past the credit: the link closes, and with it this exchange (failAll).
    this.receiveCredit.received(payload.byteLength);
    if (!this.started) {
      this.link.sendControl({ type: 'cancel', id: this.id, reason: 'data before http_response' });
      this.fail('bad_response', 'the desktop sent body data before the response head');
      return;
    }
    this.timer.refresh();
    this.bodyWritten = true;
    this.options.stats.countBytes('bytesFromDesktop', payload.byteLength);
    this.link.counters.bytesFromDesktop += payload.byteLength;
    if (this.res.write(payload)) {
      this.receiveCredit.consumed(payload.byteLength);
      return;
    }
    // Credit goes back only when the caller has taken the bytes: this is the backpressure.
    if (this.undrained === 0) {
      this.res.once('drain', () => {
        const bytes = this.undrained;
        this.undrained = 0;
        if (!this.done) this.receiveCredit.consumed(bytes);
      });
    }
    this.undrained += payload.byteLength;
  }

  onEnd(): void {
    if (this.done) return;
    if (!this.started) {
      this.fail('bad_response', 'the desktop ended the stream without a response');
      return;
    }
    this.finish();
  }

  onWindow(bytes: number): void {
    // Throws for a grant beyond what was sent: the link closes.
    this.body.grant(bytes);
  }

  onError(code: string, message: string): void {
    if (this.done) return;
    // The catalogue gives the desktop's code its status; a code of the desktop's own is a 502.
    this.fail(code, message);
  }

  /** Ends the exchange for a reason found outside it (a user limit crossed): the desktop cancels. */
  abort(error: RelayError): void {
    if (this.done) return;
    this.link.sendControl({ type: 'cancel', id: this.id, reason: error.code });
    this.fail(error.code, error.message, error);
  }

  private upload(): void {
    this.req.on('data', (chunk: Buffer) => {
      if (this.done) return;
      this.timer.refresh();
      this.options.stats.countBytes('bytesToDesktop', chunk.byteLength);
      this.link.counters.bytesToDesktop += chunk.byteLength;
      if (!this.body.write(chunk)) {
        this.req.pause();
        this.body.whenReady(() => {
          if (!this.done) this.req.resume();
        });
      }
    });
    this.req.on('end', () => {
      if (!this.done) this.body.end(() => this.link.sendControl({ type: 'end', id: this.id }));
    });
  }

  private silenceTimeout(): void {
    if (this.done) return;
    // A web client that is slow to read holds back the desktop through flow control: that is our
    // own backpressure, not the desktop's silence. Wait for the client to drain.
    if (this.undrained > 0) {
      this.timer.refresh();
      return;
    }
    const waited = `${this.options.requestTimeoutMs} ms`;
    this.link.sendControl({ type: 'cancel', id: this.id, reason: 'timeout' });
    if (this.started) this.options.logger.info('answer stalled; ending the stream', { stream: this.id, waited });
    this.fail('desktop_timeout', `the desktop did not answer within ${waited}`);
  }

  private callerGone(): void {
    this.link.sendControl({ type: 'cancel', id: this.id, reason: 'client disconnected' });
    this.cleanup();
  }

  private finish(): void {
    this.cleanup();
    this.res.end();
  }

  /** Ends the exchange with an error: a JSON error before the answer started, an aborted stream after. */
  /** Ends the exchange: a caller still waiting for the head gets the catalogue's answer for `code`. */
  private fail(code: string, message: string, error: RelayError = new CatalogueError(code, message)): void {
    const started = this.started;
    this.cleanup();
    if (started) this.res.destroy();
    else sendRelayError(this.res, error);
  }

  private cleanup(): void {
    this.done = true;
    clearTimeout(this.timer);
    this.body.clear();
    // A request body we stopped reading must still be drained, or its connection stays stuck.
    if (!this.req.complete) this.req.resume();
    this.link.correlator.close(this.id);
    this.options.stats.activeExchanges -= 1;
    this.options.stats.touch();
  }
}

function checkHeaders(headers: HttpResponseMessage['headers']): void {
  for (const [name, value] of Object.entries(headers)) {
    validateHeaderName(name);
    for (const one of Array.isArray(value) ? value : [value]) validateHeaderValue(name, one);
  }
}

function requestHasBody(req: IncomingMessage): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return true;
  const length = req.headers['content-length'];
  return length !== undefined && length !== '0';
}
