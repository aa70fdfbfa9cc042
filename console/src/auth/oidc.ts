/**
 * OpenID Connect authorization code flow with PKCE, as a public client in the browser. Only the
 * PKCE verifier and the state cross the redirect, in sessionStorage (this tab only, gone when it
 * closes, removed as soon as the provider comes back); the tokens stay in memory.
 */
import type { AuthConfigResponse } from '@ctll/protocol';
import { randomUrlSafe, s256 } from './pkce';

const PENDING_KEY = 'ctll.console.sign-in';

export interface TokenSet {
  accessToken: string;
  refreshToken: string | null;
  /** Seconds, as the provider said; null when it did not. */
  expiresIn: number | null;
}

interface ProviderMetadata {
  authorization_endpoint: string;
  token_endpoint: string;
}

interface Pending {
  verifier: string;
  state: string;
  returnTo: string;
}

export type WebSignIn = AuthConfigResponse & { webClientId: string };

export async function discover(issuer: string): Promise<ProviderMetadata> {
  const res = await fetch(`${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`, { credentials: 'omit' });
  if (!res.ok) throw new Error(`the identity provider's discovery answered ${res.status}`);
  const meta = (await res.json()) as Partial<ProviderMetadata>;
  if (!meta.authorization_endpoint || !meta.token_endpoint) throw new Error("the identity provider's discovery names no authorization or token endpoint");
  return meta as ProviderMetadata;
}

/** Sends the browser to the provider; it comes back to `redirectUri` with `?code=&state=`. */
export async function beginSignIn(config: WebSignIn, redirectUri: string, returnTo: string): Promise<void> {
  const meta = await discover(config.issuer);
  const pending: Pending = { verifier: randomUrlSafe(), state: randomUrlSafe(16), returnTo };
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  const url = new URL(meta.authorization_endpoint);
  const params = {
    response_type: 'code',
    client_id: config.webClientId,
    redirect_uri: redirectUri,
    scope: config.scopes.join(' '),
    state: pending.state,
    code_challenge: await s256(pending.verifier),
    code_challenge_method: 'S256',
    // The relay's audience, as the bridge asks for it: Auth0's `audience`, RFC 8707's `resource`.
    audience: config.audience,
    resource: config.audience,
  };
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  location.assign(url.toString());
}

/**
 * After the redirect: trades the code for tokens. Returns null when the URL carries no answer from
 * the provider; throws when it carries an error or a state this tab did not send.
 */
export async function completeSignIn(config: WebSignIn, redirectUri: string, query: URLSearchParams): Promise<{ tokens: TokenSet; returnTo: string } | null> {
  if (!query.has('code') && !query.has('error')) return null;
  const raw = sessionStorage.getItem(PENDING_KEY);
  sessionStorage.removeItem(PENDING_KEY);
  const pending = raw ? (JSON.parse(raw) as Pending) : null;
  if (query.has('error')) throw new Error(`the identity provider refused the sign-in: ${query.get('error_description') ?? query.get('error')}`);
  if (!pending || query.get('state') !== pending.state) throw new Error('this sign-in was not started here (state mismatch); sign in again');
  const tokens = await tokenRequest(config, {
    grant_type: 'authorization_code',
    code: query.get('code') ?? '',
    redirect_uri: redirectUri,
    code_verifier: pending.verifier,
  });
  return { tokens, returnTo: pending.returnTo };
}

/** Silent renewal with the refresh token held in memory. */
export function refresh(config: WebSignIn, refreshToken: string): Promise<TokenSet> {
  return tokenRequest(config, { grant_type: 'refresh_token', refresh_token: refreshToken });
}

async function tokenRequest(config: WebSignIn, grant: Record<string, string>): Promise<TokenSet> {
  const meta = await discover(config.issuer);
  const res = await fetch(meta.token_endpoint, {
    method: 'POST',
    credentials: 'omit',
    body: new URLSearchParams({ ...grant, client_id: config.webClientId, resource: config.audience }),
  });
  const body = (await res.json().catch(() => ({}))) as { access_token?: string; refresh_token?: string; expires_in?: number; error?: string; error_description?: string };
  if (!res.ok || !body.access_token) throw new Error(`the identity provider refused the token request: ${body.error_description ?? body.error ?? res.status}`);
  return { accessToken: body.access_token, refreshToken: body.refresh_token ?? null, expiresIn: body.expires_in ?? null };
}
