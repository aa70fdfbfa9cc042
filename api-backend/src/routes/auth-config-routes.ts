/**
 * `GET /api/auth/config`, public: the sign-in settings `ctll-bridge login` starts from. Everything
 * in it is already public at the identity provider (its discovery document, the client id a
 * native app ships with); the answer is the same for every caller.
 */
import { Router } from 'express';
import { AUTH_CONFIG_PATH, type AuthConfigResponse } from '@ctll/protocol';
import type { Config } from '../config';

export function authConfigRoutes(config: Pick<Config, 'auth' | 'signIn'>): Router {
  const body: AuthConfigResponse = {
    mode: config.auth.mode === 'dev' ? 'dev' : 'oidc',
    issuer: config.auth.issuer,
    audience: config.auth.audience,
    // The dev issuer has no device flow: the bridge tells the person to use `npm run token` instead.
    clientId: config.auth.mode === 'dev' ? null : (config.signIn.deviceClientId ?? null),
    scopes: config.signIn.scopes,
    // The web console's public client; dev auth signs the console in through its own dev page.
    webClientId: config.auth.mode === 'dev' ? null : (config.signIn.webClientId ?? null),
  };
  const router = Router();
  router.get(AUTH_CONFIG_PATH, (_req, res) => {
    res.set('cache-control', 'public, max-age=300').json(body);
  });
  return router;
}
