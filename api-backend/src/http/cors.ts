/**
 * Browser apps on other origins (CORS_ORIGINS, like Ollama's OLLAMA_ORIGINS). A preflight
 * (`OPTIONS` with the app's Origin) from an allowed origin is answered here, before any token is
 * asked for: browsers never send credentials on a preflight. Answers to allowed origins carry
 * Access-Control-Allow-Origin, so the app can read them (errors included). An origin not on the
 * list gets no CORS header at all, and its preflight goes on to the routes like any request
 * without a token (a 401), which the browser treats as a refusal. Nothing is allowed by default.
 *
 * No cookies are involved (credentials are bearer tokens and keys the app sets itself), so
 * Access-Control-Allow-Credentials is never sent.
 */
import cors from 'cors';
import type { RequestHandler } from 'express';

/** Methods an app may use: everything Ollama's and OpenAI's APIs take (Ollama's DELETE /api/delete). */
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];
const ALLOWED_HEADERS = ['Authorization', 'Content-Type'];
/** What an app may read besides the simple headers: when to retry, and the id to quote in a report. */
const EXPOSED_HEADERS = ['Retry-After', 'X-Request-Id'];
/** How long a browser may reuse a preflight's answer (Chromium caps it at 2 hours). */
const MAX_AGE_S = 7200;

/** The middleware for `origins` (already checked by parseCorsOrigins); undefined when the list is empty. */
export function corsMiddleware(origins: readonly string[]): RequestHandler | undefined {
  if (origins.length === 0) return undefined;
  const anyOrigin = origins.includes('*');
  const allowed = new Set(origins);
  return cors({
    // false: no CORS headers, and the request goes on as if there were no CORS at all.
    origin: anyOrigin ? '*' : (origin, callback) => callback(null, origin !== undefined && allowed.has(origin)),
    methods: METHODS,
    allowedHeaders: ALLOWED_HEADERS,
    exposedHeaders: EXPOSED_HEADERS,
    maxAge: MAX_AGE_S,
  });
}

/**
 * CORS_ORIGINS: comma-separated origins (`https://app.example.com`, `http://localhost:5173`), or `*`
 * for any. Each must be an origin exactly as a browser sends it: scheme, host and port only.
 */
export function parseCorsOrigins(text: string): string[] {
  const origins: string[] = [];
  for (const entry of text.split(',').map((part) => part.trim())) {
    if (entry === '') continue;
    if (entry === '*') {
      origins.push(entry);
      continue;
    }
    let url: URL;
    try {
      url = new URL(entry);
    } catch {
      throw new Error(`"${entry}" is not an origin (expected e.g. https://app.example.com or http://localhost:5173, or *)`);
    }
    if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.origin !== entry.replace(/\/$/, '').toLowerCase()) {
      throw new Error(`"${entry}" is not an origin: give the scheme, host and port only, as a browser sends it (e.g. ${url.origin})`);
    }
    origins.push(url.origin);
  }
  return origins;
}
