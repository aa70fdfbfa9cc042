/**
 * The long-poll transport's plain HTTP requests to the relay: every request goes through one
 * keep-alive pool (the bridge's, through the corporate proxy if there is one), carries the current
 * bearer token and user agent, and sets TCP_NODELAY so a small frame never waits for the next one.
 */
import http from 'node:http';
import https from 'node:https';

export class RelayHttp {
  private readonly base: string;
  private readonly secure: boolean;

  constructor(
    relayUrl: URL,
    private readonly agent: http.Agent,
    private readonly headers: Readonly<Record<string, string>>,
    /** The current token, read for every request: a renewed one is used from the next request on. */
    private readonly token: () => string,
  ) {
    this.base = relayUrl.href.replace(/\/+$/, '');
    this.secure = relayUrl.protocol === 'https:';
  }

  /** The relay's host, for messages. */
  get host(): string {
    return new URL(this.base).host;
  }

  /** Starts a request to `<relay>/api/bridge/<path>`; the caller writes and ends it. */
  request(method: 'GET' | 'POST', path: string, headers: http.OutgoingHttpHeaders = {}): http.ClientRequest {
    const req = (this.secure ? https : http).request(`${this.base}/api/bridge/${path}`, {
      method,
      agent: this.agent,
      headers: { ...this.headers, authorization: `Bearer ${this.token()}`, ...headers },
    });
    req.on('socket', (socket) => socket.setNoDelay(true));
    return req;
  }
}

/** Reads a small answer whole (a registration, an error body), keeping at most `limit` bytes; never rejects. */
export function readSmall(res: http.IncomingMessage, limit = 64 * 1024): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => resolve(Buffer.concat(chunks).toString('utf8'));
    res.on('data', (chunk: Buffer) => {
      if (size >= limit) return;
      chunks.push(chunk.subarray(0, limit - size));
      size += chunk.byteLength;
    });
    res.on('end', done);
    res.on('error', done);
    res.on('aborted', done);
  });
}
