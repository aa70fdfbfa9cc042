/**
 * The relay's public sign-in settings (`GET /api/auth/config`): what `ctll-bridge login` needs to
 * run the identity provider's device flow (RFC 8628) for this relay, without the person having
 * to know the issuer, client id or audience.
 */
export const AUTH_CONFIG_PATH = '/api/auth/config';

export interface AuthConfigResponse {
  /** `oidc`: tokens come from the identity provider; `dev`: from the relay's dev issuer (`npm run token -- <user>`). */
  mode: 'oidc' | 'dev';
  /** The issuer the relay trusts; the bridge discovers its endpoints from it (OpenID Connect discovery). */
  issuer: string;
  /** The audience access tokens must carry (Auth0's `audience`, RFC 8707's `resource`). */
  audience: string;
  /** The public client the device flow runs as; null when the relay offers no device login. */
  clientId: string | null;
  /** The scopes to ask for; `offline_access` among them is what brings a refresh token. */
  scopes: string[];
  /** The public client the web console signs in as (authorization code with PKCE); null when the relay offers no web sign-in. */
  webClientId: string | null;
}

/** Dev auth only (never served otherwise): the console's dev sign-in asks the relay's dev issuer for a token. */
export const DEV_TOKEN_PATH = '/api/auth/dev-token';

export interface DevTokenResponse {
  token: string;
  userId: string;
  /** ISO 8601. */
  expiresAt: string;
}
