/**
 * What the polling transport's routes need of a request and its answer. A bridge call reaches the
 * proxy either as HTTP (node's IncomingMessage and ServerResponse fit these shapes) or as a stream of
 * api-backend's frame link (upstream/bridge-call.ts), and the routes, the PollLink and its answer
 * readers are written against these shapes only, so they cannot tell the two apart.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';

/** The call's head and its body as a stream; 'close' means the caller went away or the body was read. */
export interface BridgeRequest extends Readable {
  readonly headers: IncomingHttpHeaders;
  readonly method?: string;
  /**
   * For a body this proxy passes on (a streamed answer): from now on its bytes are credited back to
   * api-backend only as `release` is called for them, once they have left this proxy, not as they
   * are read, so the proxy holds at most one window of it. Absent on an HTTP request, whose
   * socket's backpressure does the same.
   */
  creditOnRelease?(): (bytes: number) => void;
}

/** The answer: a head (writeHead or setHeader), a body written whole or in parts, an end or a break. */
export interface BridgeResponse {
  readonly headersSent: boolean;
  setHeader(name: string, value: string | number): unknown;
  writeHead(status: number, headers?: OutgoingHttpHeaders): unknown;
  write(chunk: Buffer | string): boolean;
  end(chunk?: Buffer | string): unknown;
  /** Breaks the answer off: the caller sees a broken stream, never a clean end. */
  destroy(): unknown;
  /** 'finish': the whole answer has gone out. */
  once(event: 'finish', listener: () => void): unknown;
}

/** Handles the call if it is a bridge route (true), or leaves it untouched (false). */
export type BridgeHandler = (req: BridgeRequest, res: BridgeResponse, pathname: string) => Promise<boolean>;
