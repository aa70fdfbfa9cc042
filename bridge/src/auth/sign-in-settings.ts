/**
 * The first two steps of every sign-in command: ask the relay how its users sign in
 * (`GET /api/auth/config`), then discover the identity provider's endpoints from its issuer
 * (OpenID Connect discovery) with openid-client, as the public client the relay names.
 */
import * as oidc from 'openid-client';
import { AUTH_CONFIG_PATH, type AuthConfigResponse } from '@ctll/protocol';
import { SignInUnavailableError } from '../errors';

/** The relay's sign-in settings; throws when it does not answer with them. */
export async function fetchAuthConfig(relayUrl: URL): Promise<AuthConfigResponse> {
  const url = new URL(`${relayUrl.pathname.replace(/\/+$/, '')}${AUTH_CONFIG_PATH}`, relayUrl);
  let res: Response;
  try {
    res = await fetch(url, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(15_000) });
  } catch (error) {
    // fetch says only "fetch failed"; the reason (refused, DNS, TLS) is its cause.
    const reason = ((error as Error).cause as Error | undefined)?.message ?? (error as Error).message;
    throw new Error(`cannot reach the relay at ${url.origin} (${reason})`, { cause: error });
  }
  if (!res.ok) throw new Error(`the relay answered ${url.pathname} with ${res.status} ${res.statusText}`);
  const body = (await res.json()) as Partial<AuthConfigResponse>;
  if (typeof body.issuer !== 'string' || typeof body.audience !== 'string' || !Array.isArray(body.scopes)) {
    throw new Error(`the relay's ${url.pathname} is not sign-in settings`);
  }
  return body as AuthConfigResponse;
}

/** The settings a device login needs, or a SignInUnavailableError saying what to do instead. */
export function deviceLoginSettings(config: AuthConfigResponse): AuthConfigResponse & { clientId: string } {
  if (config.mode === 'dev') {
    throw new SignInUnavailableError(
      'this relay uses dev sign-in, which has no device login. On the relay\'s machine run\n' +
        '  npm run --silent token -- <your user name>\n' +
        'and start the bridge with --token <that token> (or CTLL_TOKEN=<that token>).',
    );
  }
  if (!config.clientId) {
    throw new SignInUnavailableError(
      "this relay offers no device login (its operator has not set OIDC_DEVICE_CLIENT_ID); start the bridge with --token, using an access token from your identity provider or a relay key",
    );
  }
  return { ...config, clientId: config.clientId };
}

/** openid-client's view of the identity provider. Plain http is allowed only on this machine (tests, a provider run locally). */
export function discoverIssuer(issuer: string, clientId: string): Promise<oidc.Configuration> {
  const loopback = isLoopbackHttp(issuer);
  return oidc.discovery(new URL(issuer), clientId, undefined, oidc.None(), loopback ? { execute: [oidc.allowInsecureRequests] } : undefined);
}

function isLoopbackHttp(issuer: string): boolean {
  const url = new URL(issuer);
  return url.protocol === 'http:' && ['127.0.0.1', '[::1]', 'localhost'].includes(url.hostname);
}

/**
 * The audience goes in both spellings: Auth0 reads `audience`, RFC 8707 providers read `resource`
 * (which must be an absolute URI); each ignores the other's.
 */
export function audienceParameters(audience: string): Record<string, string> {
  return URL.canParse(audience) ? { audience, resource: audience } : { audience };
}

/** The identity provider refused the grant itself (revoked, expired, reused): only a new login helps. */
export function isGrantRefused(error: unknown): boolean {
  return error instanceof oidc.ResponseBodyError && (error.error === 'invalid_grant' || error.error === 'unauthorized_client');
}
