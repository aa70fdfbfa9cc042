/**
 * One HTTP exchange relayed to a zrok share instead of the desktop tunnel: the same promises as
 * the tunnel's Exchange, over plain HTTP. Both bodies stream with backpressure (the request body
 * is piped, the answer is paused while the caller has not drained it); headers cross under the
 * same rules (protocol/src/headers.ts: no hop-by-hop headers, no caller credentials, nothing of
 * ours); REQUEST_TIMEOUT_MS measures silence, never duration; and a caller who goes away aborts
 * the request to the share, so the model behind it stops generating.
 */
import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import { bodyFraming, CALLER_ONLY_HEADERS, CatalogueError, endToEndHeaders, type RelayError } from '@ctll/protocol';
import type { ProxyStats } from '../stats';
import type { Logger } from '../logger';
import { sendRelayError } from '../http/respond';
import type { KnownShare } from './directory';
import { ShareAddressError } from './guard';
import { describeFailure } from './health-check';
import type { ShareClient } from './share-client';

export interface ShareExchangeOptions {
  requestTimeoutMs: number;
  stats: ProxyStats;
  logger: Logger;
  /** The share could not be reached at all: the caller stops using it until it checks healthy. */
  onUnreachable: (share: KnownShare, error: string) => void;
  onDone: () => void;
}

export class ShareExchange {
  private readonly timer: NodeJS.Timeout;
  private upstream: ClientRequest | undefined;
  private started = false;
  private done = false;
  private waitingForDrain = false;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly share: KnownShare,
    private readonly client: ShareClient,
    private readonly options: ShareExchangeOptions,
  ) {
    this.timer = setTimeout(() => this.silenceTimeout(), options.requestTimeoutMs);
    options.stats.countRequest();
    options.stats.activeExchanges += 1;
    options.stats.touch();
  }

  /** `path` is what the desktop's server is asked for (path and query). */
  start(path: string): void {
    if (this.res.destroyed) {
      // The caller left while a share was being looked for.
      this.cleanup();
      return;
    }
    this.res.on('close', () => {
      if (!this.done) this.callerGone();
    });
    try {
      this.upstream = this.client.request(this.share.url, {
        method: this.req.method ?? 'GET',
        path,
        // Framed as the caller sent it: Node frames a GET or DELETE body only when told.
        headers: {
          ...endToEndHeaders(this.req.headers, CALLER_ONLY_HEADERS),
          ...bodyFraming(this.req.headers, this.req.headers['transfer-encoding'] !== undefined),
        },
      });
    } catch (error) {
      this.unreachable(error as Error);
      return;
    }
    const upstream = this.upstream;
    upstream.on('response', (answer) => this.onResponse(answer));
    // Other 1xx heads are passed over by Node's client; a 101 would leave the caller waiting.
    upstream.on('upgrade', (_answer, socket) => {
      socket.destroy();
      this.switchingRefused();
    });
    upstream.on('error', (error) => this.onUpstreamError(error));
    this.req.on('data', (chunk: Buffer) => {
      this.timer.refresh();
      this.options.stats.countBytes('bytesToDesktop', chunk.byteLength);
    });
    // pipe pauses the caller's upload while the share is slow to take it.
    this.req.pipe(upstream);
  }

  private onResponse(answer: IncomingMessage): void {
    if (this.done) {
      answer.resume();
      return;
    }
    if ((answer.statusCode ?? 0) < 200) {
      answer.destroy();
      this.switchingRefused();
      return;
    }
    try {
      this.res.writeHead(answer.statusCode ?? 502, endToEndHeaders(answer.headers));
    } catch (error) {
      this.upstream?.destroy();
      this.fail('bad_response', `the zrok share sent an invalid response head: ${(error as Error).message}`);
      return;
    }
    this.started = true;
    this.timer.refresh();
    // Headers go out now, not with the first chunk: a client sees the status while the model thinks.
    this.res.flushHeaders();
    answer.on('data', (chunk: Buffer) => {
      if (this.done) return;
      this.timer.refresh();
      this.options.stats.countBytes('bytesFromDesktop', chunk.byteLength);
      if (this.res.write(chunk)) return;
      answer.pause();
      this.waitingForDrain = true;
      this.res.once('drain', () => {
        this.waitingForDrain = false;
        answer.resume();
      });
    });
    answer.on('end', () => {
      if (this.done) return;
      this.cleanup();
      this.res.end();
    });
    // A reset mid-answer is reported as an error here and as an incomplete close below.
    answer.on('error', () => undefined);
    answer.on('close', () => {
      // Cut off before its end: the caller must see a broken stream, never a clean end.
      if (!this.done && !answer.complete) this.fail('share_failed', 'the zrok share broke off its answer');
    });
  }

  private switchingRefused(): void {
    if (this.done) return;
    this.upstream?.destroy();
    this.fail('bad_response', 'the zrok share answered 101 Switching Protocols; only HTTP answers can be relayed');
  }

  private onUpstreamError(error: NodeJS.ErrnoException): void {
    if (this.done) return;
    if (this.started) {
      this.fail('share_failed', 'the zrok share broke off its answer');
      return;
    }
    this.unreachable(error);
  }

  /** Nothing came back from the share: mark it and tell the caller why. */
  private unreachable(error: NodeJS.ErrnoException): void {
    const detail = describeFailure(error);
    this.options.onUnreachable(this.share, detail);
    this.options.logger.info('zrok share did not answer', { share: this.share.shareId, error: detail });
    const refused = error instanceof ShareAddressError;
    this.fail(refused ? 'share_address_refused' : 'share_unreachable',
      refused ? `the relay refused to connect to your zrok share: ${detail}` : `your zrok share did not answer: ${detail}`,
    );
  }

  private silenceTimeout(): void {
    if (this.done) return;
    // A caller slow to read holds the share back through backpressure: that is not the share's silence.
    if (this.waitingForDrain) {
      this.timer.refresh();
      return;
    }
    const waited = `${this.options.requestTimeoutMs} ms`;
    this.upstream?.destroy();
    if (this.started) this.options.logger.info('zrok answer stalled; ending the stream', { share: this.share.shareId, waited });
    this.fail('desktop_timeout', `your zrok share did not answer within ${waited}`);
  }

  private callerGone(): void {
    this.upstream?.destroy();
    this.cleanup();
  }

  /** Ends the exchange with an error: a JSON error before the answer started, an aborted stream after. */
  /** Ends the exchange: a caller still waiting for the head gets the catalogue's answer for `code`. */
  private fail(code: string, message: string, error: RelayError = new CatalogueError(code, message)): void {
    const started = this.started;
    this.cleanup();
    this.upstream?.destroy();
    if (started) this.res.destroy();
    else sendRelayError(this.res, error);
  }

  private cleanup(): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    // A request body we stopped sending must still be drained, or its connection stays stuck.
    if (!this.req.complete) {
      this.req.unpipe();
      this.req.resume();
    }
    this.options.stats.activeExchanges -= 1;
    this.options.stats.touch();
    this.options.onDone();
  }
}
