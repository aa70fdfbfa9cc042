/**
 * The HTTP long-poll tunnel, for networks that let plain HTTPS through but not WebSockets.
 *
 * One connection is one registration (`POST /api/bridge/register` gives a bridgeId) and, while it
 * lasts, a loop that keeps one `GET /api/bridge/poll/<bridgeId>` waiting at the relay. The relay
 * answers it the moment it has something, with a batch of records (the WebSocket's frames, each
 * behind a length), and the next poll leaves as soon as that answer begins to arrive: the relay
 * fills it while we read the one before, so a body moving down the tunnel does not stop for a round
 * trip after every batch. Answers are read strictly in the order their polls were answered (the
 * relay answered the next poll only after it had given this one its batch); one that arrives early
 * waits, paused, until the one before it is read, and no further poll leaves meanwhile. The frames go
 * to the same StreamTable and local forwarder as on the WebSocket; each answer goes back as its own
 * streamed POST (poll-stream.ts). Messages that belong to no answer (an error about a bad frame)
 * ride on heartbeats (poll-heartbeat.ts), which also keep the bridge alive at the relay whenever no
 * poll is waiting there.
 *
 * Flow control: the relay gives request-body credit back itself when a poll carries the bytes
 * away, so no `window` travels here; instead the bridge holds back its next poll while its local
 * requests have more than MAX_UNTAKEN_BYTES of body they have not taken yet. Never for longer than
 * MAX_POLL_PAUSE_MS, though: the poll is shared, and one local server that stopped reading must
 * not keep every other stream (and the cancel that would end its own) from arriving. A poll leaves
 * before the answer being read is counted, so the untaken body may pass that mark by one batch
 * (at most POLL_STREAM_WINDOW, 8 MiB, from a relay that grows windows; 4 MiB from an older one).
 * Answers are paced by their POST's TCP backpressure.
 *
 * Credit is checked all the same, per poll answer (poll-batch.ts, which also validates every
 * frame): an answer holding more than a window plus one frame of a stream's body ends the
 * connection, and the bridge registers again, as after a WebSocket closed with 1008.
 *
 * A poll or heartbeat answered 404 means the relay forgot this bridge (it restarted, or dropped it
 * after its grace period): the connection ends and the bridge's loop registers again, with its
 * usual backoff, exactly as after a dropped WebSocket.
 *
 * Each poll asks the token source first, and every request (poll, heartbeat, answer) carries the
 * token it gave: a renewed token reaches the relay with the next request, which is how a polling
 * bridge keeps its registration alive past its first token's expiry. A poll may wait at the relay
 * for longer than a short token has left, so ahead of expiry (as on the WebSocket) the bridge also
 * takes the new token at once and sends a heartbeat with it.
 *
 * Whole frames (protocol/src/tunnel-whole.ts): the registration offers them; a relay that takes them
 * says `whole: true` in its answer, and only then does a short answer leave as one POST of one whole
 * frame (short-answer.ts, poll-stream.ts). A whole request record is taken only if we offered them.
 * With them the registration offers batches of short answers, and a relay that takes them says
 * `answers: true`: the answers of one turn then leave in one POST (poll-answers.ts).
 */
import type http from 'node:http';
import {
  INITIAL_WINDOW,
  MAX_STREAM_WINDOW,
  POLL_BATCH_CONTENT_TYPE,
  pollRegistrationSchema,
  PROTOCOL_VERSION,
  PROTOCOL_VERSION_HEADER,
  TunnelErrorCode,
  type ControlMessage,
  type PollRegistration,
} from '@ctll/protocol';
import { HandshakeTimeoutError, parseRelayError, PollRejectedError, RegistrationLostError } from './errors';
import { Heartbeats, type HeartbeatHost } from './poll-heartbeat';
import { readSmall, RelayHttp } from './poll-http';
import { PollStreamPort, type PollStreamHost } from './poll-stream';
import { StreamTable, type StreamPort, type TunnelSender } from './stream-table';
import type { ConnectionEvents, Transport, TransportSetup, TunnelConnection } from './transport';
import { VERSION } from './version';
import { RenewalTimer } from './auth/renewal';
import { holdShortAnswers } from './short-answer';
import { readBatch, type BatchSink } from './poll-batch';
import { AnswerBatcher } from './poll-answers';

/** Request body the local requests may hold untaken before the bridge stops fetching more. */
export const MAX_UNTAKEN_BYTES = 4 * 1024 * 1024;
/** Longest the next poll waits for local requests to take their body. */
export const MAX_POLL_PAUSE_MS = 1_000;

export const connectPolling: Transport = (setup, events) => new PollConnection(setup, events);

class PollConnection implements TunnelConnection, TunnelSender, PollStreamHost, HeartbeatHost {
  readonly http: RelayHttp;
  bridgeId = '';
  private readonly streams: StreamTable;
  private readonly ports = new Map<string, PollStreamPort>();
  private registration: PollRegistration | undefined;
  /** The most of one stream a poll answer may hold: what we offered, if the relay agreed (no more than it said), else fixed. */
  private answerWindow = INITIAL_WINDOW;
  /** Set when the relay takes batches of short answers (poll-answers.ts). */
  answers: AnswerBatcher | undefined;
  /** The registration, then the poll, in flight: sent, and its answer not yet being read. */
  private pending: http.ClientRequest | undefined;
  /** The poll whose answer is being read. */
  private reading: http.ClientRequest | undefined;
  /** The next answer's reading, when it arrived before `reading`'s answer was read through. */
  private nextAnswer: (() => void) | undefined;
  private heartbeats: Heartbeats | undefined;
  private untaken = 0;
  /** Set while the next poll waits for local requests to take their body. */
  private pauseTimer: NodeJS.Timeout | undefined;
  /** Set once for a poll that failed on a reused keep-alive socket: that one is retried at once. */
  private retriedStaleSocket = false;
  private isOpen = false;
  private ended = false;
  private draining = false;
  /** The token requests carry: the one the connection opened with, then each poll's. */
  private token: string;
  /** Set while the next poll waits for the token source. */
  private awaitingToken = false;
  private readonly renewal: RenewalTimer;
  /** What each poll answer's reader may touch of this connection. */
  private readonly batchSink: BatchSink;

  constructor(
    private readonly setup: TransportSetup,
    private readonly events: ConnectionEvents,
  ) {
    this.token = setup.token;
    // A new token reaches the relay with a heartbeat at once: a held poll may outlast a short token.
    this.renewal = new RenewalTimer(
      setup.tokens,
      () => this.token,
      (token) => {
        this.token = token;
        this.heartbeats?.beat();
      },
      (message) => this.events.notice(message),
    );
    this.http = new RelayHttp(
      setup.relayUrl,
      setup.httpAgent,
      {
        'user-agent': setup.userAgent,
        // The relay checks it when the bridge registers (protocol-version.ts).
        [PROTOCOL_VERSION_HEADER]: String(PROTOCOL_VERSION),
      },
      () => this.token,
    );
    this.streams = new StreamTable(setup.targets, this, (outcome) => {
      if (outcome === 'served') events.served();
      this.closeIfDrained();
    });
    this.batchSink = {
      streams: this.streams,
      wholeFrames: setup.wholeFrames,
      window: () => this.answerWindow,
      ended: () => this.ended,
      hasPort: (id) => this.ports.has(id),
      addUntaken: (bytes) => {
        this.untaken += bytes;
      },
      rejectFrame: (reason, id) => this.rejectFrame(reason, id),
      notice: (message) => this.events.notice(message),
      fail: (reason) => this.fail(reason),
    };
    this.register();
  }

  get activeStreams(): number {
    return this.streams.size;
  }

  openStream(id: string): StreamPort {
    const port = new PollStreamPort(id, this);
    this.ports.set(id, port);
    // The relay said it takes whole frames only if we offered them.
    return this.registration?.whole === true ? holdShortAnswers(id, port, (head, body) => port.whole(head, body)) : port;
  }

  get polling(): boolean {
    return this.pending !== undefined || this.awaitingToken;
  }

  sendControl(message: ControlMessage): void {
    // The relay returns request-body credit itself on this transport.
    if (message.type === 'window') return;
    this.heartbeats?.send(message);
  }

  notice(message: string): void {
    this.events.notice(message);
  }

  abandon(id: string, why?: string): void {
    if (why && this.streams.has(id)) this.events.notice(why);
    this.streams.abort(id);
  }

  bodyTaken(bytes: number): void {
    this.untaken -= bytes;
    if (this.pauseTimer && this.untaken <= MAX_UNTAKEN_BYTES) this.poll();
  }

  released(id: string): void {
    this.ports.delete(id);
  }

  close(): Promise<void> {
    this.end('closed by the bridge', true);
    return Promise.resolve();
  }

  drain(): void {
    this.draining = true;
    this.closeIfDrained();
  }

  private closeIfDrained(): void {
    if (this.draining && this.streams.size === 0) void this.close();
  }

  private register(): void {
    const body = JSON.stringify({ clientId: this.setup.clientId, platform: process.platform, version: VERSION, ...(this.setup.wholeFrames ? { whole: true, answers: true } : {}), ...(this.setup.growWindows ? { window: MAX_STREAM_WINDOW } : {}) });
    const req = this.http.request('POST', 'register', { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    this.pending = req;
    let connected = false;
    let timedOut = false;
    req.on('socket', (socket) => {
      if (!socket.connecting) connected = true;
      else socket.once('connect', () => (connected = true));
    });
    req.setTimeout(this.setup.handshakeTimeoutMs, () => {
      timedOut = true;
      req.destroy(new Error('registration timed out'));
    });
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (timedOut) {
        const timeout = new HandshakeTimeoutError(this.setup.handshakeTimeoutMs, connected);
        this.fail(timeout.message, timeout);
      } else {
        this.fail(`could not reach the relay at ${this.http.host}: ${error.code ?? error.message}`, error);
      }
    });
    req.on('response', (res) => {
      void readSmall(res).then((text) => {
        if (this.pending !== req) return;
        this.pending = undefined;
        if (res.statusCode !== 201) return this.refused(res, text);
        const registration = readRegistration(text);
        if (!registration) return this.fail(`the relay's answer to register is not a registration (${text.slice(0, 80)})`);
        this.opened(registration);
      });
    });
    req.end(body);
  }

  private opened(registration: PollRegistration): void {
    if (this.ended) return;
    this.registration = registration;
    this.answerWindow = this.setup.growWindows && registration.window !== undefined ? Math.min(registration.window, MAX_STREAM_WINDOW) : INITIAL_WINDOW;
    this.bridgeId = registration.bridgeId;
    // Batches hold whole frames: the relay says so only if we offered both.
    if (registration.whole === true && registration.answers === true) this.answers = new AnswerBatcher(this);
    this.isOpen = true;
    this.heartbeats = new Heartbeats(this, registration.heartbeatIntervalMs, this.setup.handshakeTimeoutMs);
    this.events.opened();
    this.renewal.start();
    this.poll();
  }

  /** Sends the next poll, unless one is out; `force` sends it even while local requests lag behind. */
  private poll(force = false): void {
    if (this.ended || this.pending || this.awaitingToken || !this.registration) return;
    if (!force && this.untaken > MAX_UNTAKEN_BYTES) {
      this.pauseTimer ??= setTimeout(() => {
        this.pauseTimer = undefined;
        this.poll(true);
      }, MAX_POLL_PAUSE_MS);
      return;
    }
    clearTimeout(this.pauseTimer);
    this.pauseTimer = undefined;
    this.awaitingToken = true;
    this.setup.tokens.get().then(
      (token) => {
        this.awaitingToken = false;
        this.token = token;
        this.sendPoll();
      },
      (error: Error) => {
        this.awaitingToken = false;
        this.fail(`could not get a token: ${error.message}`, error);
      },
    );
  }

  private sendPoll(): void {
    if (this.ended || this.pending || !this.registration) return;
    const req = this.http.request('GET', `poll/${this.bridgeId}`);
    this.pending = req;
    // The relay answers within pollTimeoutMs; pingTimeoutMs of silence beyond that means it is gone.
    const silenceMs = this.registration.pollTimeoutMs + this.setup.pingTimeoutMs;
    let silent = false;
    req.setTimeout(silenceMs, () => {
      silent = true;
      req.destroy(new Error('poll timed out'));
    });
    req.on('response', (res) => this.onPollAnswer(req, res));
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (this.pending !== req) return;
      this.pending = undefined;
      // A keep-alive socket the relay closed just as we reused it: the poll never reached the relay.
      if (!silent && req.reusedSocket && error.code === 'ECONNRESET' && !this.retriedStaleSocket) {
        this.retriedStaleSocket = true;
        this.poll();
        return;
      }
      if (silent) this.fail(`no answer to a poll from the relay for ${formatSeconds(silenceMs)}`);
      else this.fail(`lost the relay at ${this.http.host}: ${error.code ?? error.message}`, error);
    });
    req.end();
  }

  private onPollAnswer(req: http.ClientRequest, res: http.IncomingMessage): void {
    const status = res.statusCode ?? 0;
    const contentType = res.headers['content-type'] ?? '';
    res.on('error', () => this.pollCutOff(req));
    res.on('aborted', () => this.pollCutOff(req));
    if (status === 204) {
      res.resume();
      res.on('end', () => this.pollAnswered(req));
      return;
    }
    if (status === 200 && contentType.startsWith(POLL_BATCH_CONTENT_TYPE)) {
      const read = () => {
        if (this.pending === req) this.pending = undefined;
        this.reading = req;
        readBatch(res, this.batchSink, () => this.batchRead(req));
        // The relay has given this poll its batch: the next one may wait there while we read it.
        // It leaves once what has arrived of the batch is handed out, so the request a lone batch
        // carries reaches the local server first (sent before it, lone requests took longer).
        setImmediate(() => this.poll());
        // An answer that waited was paused, and a new 'data' listener does not undo an explicit pause.
        res.resume();
      };
      if (this.reading) {
        res.pause();
        this.nextAnswer = read;
      } else {
        read();
      }
      return;
    }
    void readSmall(res).then((text) => {
      if (status === 200) {
        // Something between us and the relay (a captive portal, a filtering proxy) answered instead.
        this.fail(`a poll was answered with ${contentType || 'no content type'} instead of frames: something in between answers for the relay`);
        return;
      }
      this.refused(res, text);
    });
  }

  /** Frames of a cut-off answer are lost, and with them the streams they belonged to: start over. */
  private pollCutOff(req: http.ClientRequest): void {
    if (this.pending !== req && this.reading !== req) return;
    this.pending = undefined;
    this.fail(`lost the relay at ${this.http.host}: a poll answer was cut off`);
  }

  /** An empty answer (the poll's time at the relay ran out): the next poll leaves. */
  private pollAnswered(req: http.ClientRequest): void {
    if (this.pending !== req) return;
    this.pending = undefined;
    this.retriedStaleSocket = false;
    this.poll();
  }

  /** A batch read through: the answer that waited behind it is read next, or a poll leaves if none is out. */
  private batchRead(req: http.ClientRequest): void {
    if (this.reading !== req) return;
    this.reading = undefined;
    this.retriedStaleSocket = false;
    const next = this.nextAnswer;
    this.nextAnswer = undefined;
    if (next) next();
    else this.poll();
  }

  /** `id`: the stream the frame named, which then fails at the relay at once instead of by its timeout. */
  private rejectFrame(reason: string, id?: string): void {
    this.events.notice(`rejected a malformed message from the relay: ${reason}`);
    this.sendControl({ type: 'error', ...(id === undefined ? {} : { id }), code: TunnelErrorCode.BadMessage, message: reason });
  }

  /** The relay (or something in its place) answered with a status we cannot go on with. */
  refused(res: http.IncomingMessage, text: string): void {
    const status = res.statusCode ?? 0;
    if (status === 404 && this.isOpen) {
      const error = new RegistrationLostError();
      this.fail(error.message, error);
      return;
    }
    const body = parseRelayError(text);
    const error = new PollRejectedError(status, res.statusMessage ?? '', body?.code, body?.message);
    this.fail(error.message, error);
  }

  private fail(reason: string, error?: Error): void {
    this.end(reason, false, error);
  }

  private end(reason: string, byUs: boolean, error?: Error): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.pauseTimer);
    this.renewal.stop();
    this.heartbeats?.stop();
    this.pending?.destroy();
    this.pending = undefined;
    this.reading?.destroy();
    this.reading = undefined;
    this.nextAnswer = undefined;
    this.streams.abortAll();
    this.events.closed({ reason, wasOpen: this.isOpen, byUs, error });
  }
}

/** The registration the relay answered, checked: a bad one would make every later request fail. */
function readRegistration(text: string): PollRegistration | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  const registration = pollRegistrationSchema.safeParse(raw);
  return registration.success ? registration.data : undefined;
}

function formatSeconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}
