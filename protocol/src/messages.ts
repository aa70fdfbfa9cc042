/**
 * Control messages of the tunnel protocol (JSON text frames).
 *
 * The original relay's five messages are the base (`http_request`, `http_response`, `ping`, `pong`, `error`,
 * correlated by `id`). Bodies never travel inside these: they follow as binary data frames
 * (see frames.ts) and close with `end`, so an answer streams and any byte passes untouched.
 * `cancel` and `window` add abort and per-stream flow control; `blocked` lets a receiver grow a
 * window, and is sent only over a link whose ends agreed to that (stream-window.ts). Every message that arrives from
 * the other side goes through `parseControl`, which never throws.
 */
import { z } from 'zod';
import { targetReportSchema } from './target';

export const PROTOCOL_VERSION = 1;

/** Stream ids are short ASCII strings so they fit the one-byte length of a data frame header. */
export const STREAM_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
const streamId = z.string().regex(STREAM_ID_PATTERN, 'id must be 1-64 characters of [A-Za-z0-9_.-]');

/** Header names and values as Node gives them (exported as `Headers`, below). */
type WireHeaders = Record<string, string | string[]>;

const MAX_HEADERS = 256;
const MAX_HEADER_NAME = 256;
const MAX_HEADER_VALUE = 16 * 1024;
const MAX_HEADER_REPEATS = 64;

/**
 * What is wrong with a message's headers, or undefined when nothing is. One pass over a plain
 * object: every request and answer head on the data path is checked in each process it crosses,
 * and the same rules as a record of unions cost about 2.5 µs more per head there.
 */
function headersProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'headers must be an object';
  let count = 0;
  for (const name of Object.keys(value)) {
    if (++count > MAX_HEADERS) return `at most ${MAX_HEADERS} headers`;
    if (name.length < 1 || name.length > MAX_HEADER_NAME) return `a header name is 1-${MAX_HEADER_NAME} characters`;
    const field = (value as Record<string, unknown>)[name];
    if (typeof field === 'string') {
      if (field.length > MAX_HEADER_VALUE) return `header ${name}: at most ${MAX_HEADER_VALUE} characters`;
      continue;
    }
    if (!Array.isArray(field)) return `header ${name}: a string or a list of strings`;
    if (field.length > MAX_HEADER_REPEATS) return `header ${name}: at most ${MAX_HEADER_REPEATS} values`;
    for (const item of field as unknown[]) {
      if (typeof item !== 'string') return `header ${name}: a string or a list of strings`;
      if (item.length > MAX_HEADER_VALUE) return `header ${name}: at most ${MAX_HEADER_VALUE} characters`;
    }
  }
  return undefined;
}

export const wireHeadersSchema = z.custom<WireHeaders>((value) => headersProblem(value) === undefined, {
  error: (issue) => headersProblem(issue.input) ?? 'invalid headers',
});

export const httpRequestSchema = z.object({
  type: z.literal('http_request'),
  id: streamId,
  method: z.string().regex(/^[A-Z]{1,16}$/, 'method must be an upper-case HTTP token'),
  /** Path and query on the desktop's target, always starting with `/`. */
  path: z.string().startsWith('/').max(8192),
  headers: wireHeadersSchema,
  /** true when no body follows (GET and friends): the desktop may send its request at once. */
  end: z.boolean(),
});

export const httpResponseSchema = z.object({
  type: z.literal('http_response'),
  id: streamId,
  status: z.number().int().min(100).max(599),
  headers: wireHeadersSchema,
  /** true when no body follows. */
  end: z.boolean(),
});

export const endSchema = z.object({ type: z.literal('end'), id: streamId });

export const cancelSchema = z.object({
  type: z.literal('cancel'),
  id: streamId,
  reason: z.string().max(512).optional(),
});

/** Flow control: the receiver of a stream's body lets the sender have `bytes` more. */
export const windowSchema = z.object({
  type: z.literal('window'),
  id: streamId,
  bytes: z.number().int().positive().max(2 ** 31),
});

/** A sender's credit for a stream ran out with bytes to send (only where windows grow, stream-window.ts). */
export const blockedSchema = z.object({
  type: z.literal('blocked'),
  id: streamId,
});

export const pingSchema = z.object({ type: z.literal('ping'), ts: z.number() });
export const pongSchema = z.object({ type: z.literal('pong'), ts: z.number() });

export const errorSchema = z.object({
  type: z.literal('error'),
  /** Absent when the error is about the connection, not one stream. */
  id: streamId.optional(),
  code: z.string().min(1).max(64),
  message: z.string().max(2048),
});

/**
 * Bridge to relay on a WebSocket: a fresh credential for the tunnel, sent before the one it
 * opened with expires. A refusal comes back as an `error` message (RenewalErrorCode).
 */
export const tokenSchema = z.object({
  type: z.literal('token'),
  /** A JWT or relay key: visible ASCII, as in an Authorization header. */
  token: z.string().min(1).max(8192).regex(/^[\x21-\x7e]+$/, 'token must be visible ASCII'),
});

export const controlMessageSchema = z.discriminatedUnion('type', [
  httpRequestSchema,
  httpResponseSchema,
  endSchema,
  cancelSchema,
  windowSchema,
  blockedSchema,
  pingSchema,
  pongSchema,
  errorSchema,
  // Desktop → relay: how its local LLM server is doing (target.ts).
  targetReportSchema,
  tokenSchema,
]);

export type HttpRequestMessage = z.infer<typeof httpRequestSchema>;
export type HttpResponseMessage = z.infer<typeof httpResponseSchema>;
export type EndMessage = z.infer<typeof endSchema>;
export type CancelMessage = z.infer<typeof cancelSchema>;
export type WindowMessage = z.infer<typeof windowSchema>;
export type BlockedMessage = z.infer<typeof blockedSchema>;
export type PingMessage = z.infer<typeof pingSchema>;
export type PongMessage = z.infer<typeof pongSchema>;
export type ErrorMessage = z.infer<typeof errorSchema>;
export type TokenMessage = z.infer<typeof tokenSchema>;
export type ControlMessage = z.infer<typeof controlMessageSchema>;
export type Headers = HttpRequestMessage['headers'];

/** Error codes carried by `error` messages. */
export const TunnelErrorCode = {
  /** A message that failed validation; the connection stays up. */
  BadMessage: 'bad_message',
  /** The desktop could not reach its local LLM server. */
  TargetUnreachable: 'target_unreachable',
  /** The local LLM server failed mid-answer. */
  TargetFailed: 'target_failed',
  /** A stream id the receiver does not know (already finished or cancelled). */
  UnknownStream: 'unknown_stream',
  /** Too many concurrent streams on one tunnel. */
  TooManyStreams: 'too_many_streams',
  /** The request path climbs above the target's base path; the relay answers 400. */
  BadPath: 'bad_path',
  /** The request's `/t/<name>/` prefix names no target the bridge has; the relay answers 404. */
  UnknownTarget: 'unknown_target',
} as const;

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string };

/** Parses a text frame. Never throws: a bad frame is a value the caller answers. */
export function parseControl(text: string): ParseResult<ControlMessage> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, error: 'not valid JSON' };
  }
  const result = controlMessageSchema.safeParse(raw);
  if (result.success) return { ok: true, value: result.data };
  const issue = result.error.issues[0];
  const where = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
  return { ok: false, error: `${where}${issue?.message ?? 'invalid message'}` };
}

export function encodeControl(message: ControlMessage): string {
  return JSON.stringify(message);
}
