/**
 * The long-poll transport's heartbeats: `POST /api/bridge/heartbeat/<bridgeId>` with
 * `{messages: [...]}`. They carry the control messages that belong to no answer (an error about
 * a bad frame, a failure mid-answer), sent together as soon as they are produced, one heartbeat at
 * a time; and they keep the bridge alive at the relay while no poll waits there, since the relay
 * drops a bridge that neither polls nor heartbeats for its grace period.
 */
import type http from 'node:http';
import type { ControlMessage } from '@ctll/protocol';
import { readSmall, type RelayHttp } from './poll-http';

/** The most control messages one heartbeat carries (the relay's limit). */
const MAX_HEARTBEAT_MESSAGES = 256;

export interface HeartbeatHost {
  readonly http: RelayHttp;
  readonly bridgeId: string;
  /** True while a poll is out: the relay knows we are here without a heartbeat. */
  readonly polling: boolean;
  /** The relay refused a heartbeat in a way that ends the connection (404: it forgot us; 401/403). */
  refused(res: http.IncomingMessage, text: string): void;
  notice(message: string): void;
}

export class Heartbeats {
  private outbox: ControlMessage[] = [];
  private inFlight: http.ClientRequest | undefined;
  private flushScheduled = false;
  private readonly timer: NodeJS.Timeout;
  private stopped = false;
  /** A beat asked for while another heartbeat was out: sent once that one is over. */
  private beatPending = false;

  constructor(
    private readonly host: HeartbeatHost,
    intervalMs: number,
    private readonly timeoutMs: number,
  ) {
    this.timer = setInterval(() => {
      if (!host.polling) this.flush(true);
    }, intervalMs);
    this.timer.unref();
  }

  /** Queues a message; messages produced in the same tick travel together. */
  send(message: ControlMessage): void {
    if (this.stopped) return;
    this.outbox.push(message);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Sends a heartbeat now even with nothing queued: it carries a renewed token to the relay. */
  beat(): void {
    if (this.inFlight) this.beatPending = true;
    else this.flush(true);
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.inFlight?.destroy();
    this.inFlight = undefined;
    this.outbox = [];
  }

  /** Sends what is queued; `keepAlive` sends a heartbeat even with nothing queued. */
  private flush(keepAlive = false): void {
    if (this.stopped || this.inFlight) return;
    keepAlive ||= this.beatPending;
    this.beatPending = false;
    if (this.outbox.length === 0 && !keepAlive) return;
    const body = JSON.stringify({ messages: this.outbox.splice(0, MAX_HEARTBEAT_MESSAGES) });
    const req = this.host.http.request('POST', `heartbeat/${this.host.bridgeId}`, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
    });
    this.inFlight = req;
    req.setTimeout(this.timeoutMs, () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    /** True the first time: a heartbeat is over once, by its answer or by an error. */
    const over = () => {
      if (this.inFlight !== req) return false;
      this.inFlight = undefined;
      return true;
    };
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (!over()) return;
      // The poll loop judges whether the relay is there; a lost heartbeat only loses its messages.
      this.host.notice(`a heartbeat did not reach the relay: ${error.code ?? error.message}`);
      this.flush();
    });
    req.on('response', (res) => {
      void readSmall(res).then((text) => {
        if (!over()) return;
        const status = res.statusCode ?? 0;
        if (status === 200) this.flush();
        else if (status === 404 || status === 401 || status === 403) this.host.refused(res, text);
        else this.host.notice(`the relay refused a heartbeat: ${status} ${text.slice(0, 200)}`);
      });
    });
    req.end(body);
  }
}
