/**
 * Which headers cross the tunnel. Hop-by-hop headers (RFC 9110 §7.6.1) describe one connection,
 * not the message, so every hop drops them; the relay also keeps the caller's credentials and our
 * own internal headers to itself.
 */
import type { Headers } from './messages';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
]);

/** Prefix of the headers our own programs exchange; never accepted from or passed to outsiders. */
export const INTERNAL_HEADER_PREFIX = 'x-ctll-';

type IncomingHeaders = Record<string, string | string[] | undefined>;

function namedInConnection(headers: IncomingHeaders): Set<string> {
  const connection = headers['connection'];
  const names = new Set<string>();
  for (const value of Array.isArray(connection) ? connection : connection ? [connection] : []) {
    for (const name of value.split(',')) names.add(name.trim().toLowerCase());
  }
  return names;
}

/**
 * Headers of a message as they should leave this hop. `content-length` stays: every hop passes the
 * body's bytes unchanged, and a client downloading a file deserves to know its size.
 */
export function endToEndHeaders(incoming: IncomingHeaders, drop: readonly string[] = []): Headers {
  const extra = namedInConnection(incoming);
  const out: Headers = {};
  for (const [rawName, value] of Object.entries(incoming)) {
    if (value === undefined) continue;
    const name = rawName.toLowerCase();
    if (HOP_BY_HOP.has(name) || extra.has(name) || name.startsWith(INTERNAL_HEADER_PREFIX)) continue;
    if (drop.includes(name)) continue;
    out[name] = value;
  }
  return out;
}

/**
 * How a forwarded request's body is framed, taken from the request that brought it: its
 * `content-length`, or `transfer-encoding: chunked` when it had a body of unknown length. Node's
 * client frames a GET, DELETE or OPTIONS body only when told, and would otherwise send its bytes
 * raw after the head, where the next server reads them as a second request.
 */
export function bodyFraming(incoming: IncomingHeaders, hasBody: boolean): Headers {
  const length = incoming['content-length'];
  if (typeof length === 'string') return { 'content-length': length };
  return hasBody ? { 'transfer-encoding': 'chunked' } : {};
}

/** Headers that a web client's request never carries to the desktop. */
export const CALLER_ONLY_HEADERS = ['authorization', 'cookie', 'forwarded', 'x-forwarded-for', 'x-real-ip'] as const;
