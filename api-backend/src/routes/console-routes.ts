/**
 * The web console (console/, built to static files by `npm run build`) at `/`, its assets under
 * `/console/`. Its pages run under a strict Content-Security-Policy: script and style only from
 * this origin and never inline, never framed, no <base>, no plugins. It calls this origin only,
 * and with a real identity provider also the provider's own origin (its discovery document and
 * token endpoint, which the authorization code flow calls from the browser).
 */
import path from 'node:path';
import express, { Router, type Response } from 'express';
import { NotFoundError } from '@ctll/protocol';

export interface ConsoleOptions {
  /** The built console (index.html, app.js, app.css). */
  dir: string;
  /** The identity provider's origin when the console signs in through it; undefined under dev auth. */
  providerOrigin?: string;
}

export function contentSecurityPolicy(providerOrigin?: string): string {
  return [
    "default-src 'self'",
    `connect-src 'self'${providerOrigin ? ` ${providerOrigin}` : ''}`,
    "form-action 'self'",
    "object-src 'none'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; ');
}

export function consoleRoutes(options: ConsoleOptions): Router {
  const headers = {
    'content-security-policy': contentSecurityPolicy(options.providerOrigin),
    'x-content-type-options': 'nosniff',
    // The sign-in's ?code= never leaves in a Referer.
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
    'cross-origin-opener-policy': 'same-origin',
  };
  const secure = (res: Response) => res.set(headers);
  const router = Router();
  router.get('/', (_req, res, next) => {
    secure(res).set('cache-control', 'no-cache');
    res.sendFile(path.join(options.dir, 'index.html'), (error) => {
      if (error) next(new NotFoundError('the web console is not built on this relay (npm run build)'));
    });
  });
  router.use(
    '/console',
    (_req, res, next) => {
      secure(res);
      next();
    },
    // Revalidated on every load (ETag): a new build is picked up without renaming files.
    express.static(options.dir, { index: false, redirect: false, cacheControl: true, maxAge: 0, dotfiles: 'ignore' }),
  );
  return router;
}
