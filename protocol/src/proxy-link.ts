/**
 * The frame link between api-backend and a user's proxy: one WebSocket per
 * proxy, opened by api-backend at PROXY_LINK_PATH with the proxy secret, that carries every relayed
 * request as the tunnel's own frames (messages.ts, frames.ts) with the same per-stream credit
 * (flow.ts). On this link api-backend plays the relay's part (it sends `http_request`, the request
 * body, answer credit and `cancel`) and the proxy the desktop's (it answers `http_response`, the
 * answer body, `end`, request credit or `error`); the proxy carries each stream on to the desktop's
 * own link under a stream id of that link.
 *
 * Each side says `hello` with its PROTOCOL_VERSION first; a side that gets another version closes
 * the link with LINK_VERSION_CLOSE and a reason naming both. Then the proxy says whether a desktop
 * is connected (`desktop`), and again whenever that changes. Requests go over the link either way:
 * without a desktop the proxy answers from the user's zrok share, or with desktop_offline.
 *
 * A side whose `hello` says `whole: true` takes whole frames (whole-frame.ts: a short request or
 * answer as one message); the other side sends them only then. Older sides leave the field out
 * (and zod drops it on their side), so the feature needs no new PROTOCOL_VERSION: the tunnel
 * protocol the bridge speaks is unchanged.
 *
 * A proxy whose `hello` says `bridgeCalls: true` also takes a polling bridge's own calls (register,
 * poll, respond, answers, heartbeat) on the link, as `http_request` streams marked with BRIDGE_CALL_HEADER,
 * and answers them itself with `http_response` frames: the bridge's HTTP is parsed once, at
 * api-backend, as a web client's is. To a proxy that does not say so (an older release still
 * running after an upgrade), api-backend sends those calls as HTTP requests instead.
 */
import { z } from 'zod';
import { controlMessageSchema, type ControlMessage, type ParseResult } from './messages';

/** Where a proxy accepts api-backend's frame link (a WebSocket upgrade carrying the proxy secret). */
export const PROXY_LINK_PATH = '/link';

/** The close of a link whose other side speaks another protocol version (4000-4999: ours). */
export const LINK_VERSION_CLOSE_CODE = 4426;

/**
 * Marks a request on the link as a polling bridge's own call, for the proxy to answer, not for the
 * desktop; its value is `1`. It is an internal header (INTERNAL_HEADER_PREFIX, headers.ts), which
 * api-backend strips from everything a web client sends, so only api-backend can set it.
 */
export const BRIDGE_CALL_HEADER = 'x-ctll-bridge-call';

export const linkHelloSchema = z.object({
  type: z.literal('hello'),
  version: z.number().int().positive(),
  /** This side takes whole frames (whole-frame.ts); absent from sides released before them. */
  whole: z.boolean().optional(),
  /** Proxy → api-backend: this proxy answers bridge calls on the link (BRIDGE_CALL_HEADER). */
  bridgeCalls: z.boolean().optional(),
});

/** Proxy → api-backend: whether a desktop link is connected now. */
export const linkDesktopSchema = z.object({
  type: z.literal('desktop'),
  connected: z.boolean(),
});

export const linkMessageSchema = z.discriminatedUnion('type', [linkHelloSchema, linkDesktopSchema, ...controlMessageSchema.options]);

export type LinkHelloMessage = z.infer<typeof linkHelloSchema>;
export type LinkDesktopMessage = z.infer<typeof linkDesktopSchema>;
export type LinkMessage = z.infer<typeof linkMessageSchema>;

/** Parses a text frame of the frame link. Never throws. */
export function parseLinkMessage(text: string): ParseResult<LinkMessage> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, error: 'not valid JSON' };
  }
  const result = linkMessageSchema.safeParse(raw);
  if (result.success) return { ok: true, value: result.data };
  const issue = result.error.issues[0];
  const where = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
  return { ok: false, error: `${where}${issue?.message ?? 'invalid message'}` };
}

export function encodeLinkMessage(message: LinkMessage | ControlMessage): string {
  return JSON.stringify(message);
}

/** The close reason for a `hello` of another version (at most 123 bytes, as a close reason must be). */
export function linkVersionMismatch(own: number, theirs: number, self: 'api-backend' | 'streaming-proxy'): string {
  const other = self === 'api-backend' ? 'streaming-proxy' : 'api-backend';
  return `protocol version mismatch: ${self} speaks ${own}, ${other} speaks ${theirs}; run one release of both`;
}
