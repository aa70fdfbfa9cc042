// A real OpenID provider (oidc-provider) on 127.0.0.1, run as a child process by
// tests/helpers/oidc-provider.ts: oidc-provider is an ES module, which jest's CommonJS runtime
// cannot load. Settings come as one JSON argument; the issuer URL is printed as one JSON line on
// stdout once it listens.
//
// What a relay operator's provider offers: the device flow (RFC 8628) for one public client,
// refresh tokens (offline_access, rotated on use), revocation, and resource indicators, so access
// tokens are RS256 JWTs for the relay's audience, signed with a key published at /jwks.
// Sign-in is oidc-provider's development interaction pages; findAccount knows only the fixed
// test accounts, so any other name never gets a token.
import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';
import Provider, { errors } from 'oidc-provider';

const settings = JSON.parse(process.argv[2]);
const { clientId, audience, accessTokenTtlS, accounts, webClientId, webRedirectUris } = settings;

// The web console's public client (authorization code with PKCE), when a test names its callback.
const webClients = webRedirectUris
  ? [
      {
        client_id: webClientId,
        client_name: 'ctll web console',
        application_type: 'web',
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: webRedirectUris,
      },
    ]
  : [];

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = { ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', alg: 'RS256', use: 'sig' };

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_name: 'ctll-bridge',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
      response_types: [],
      redirect_uris: [],
    },
    ...webClients,
  ],
  jwks: { keys: [signingJwk] },
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  claims: { openid: ['sub'], profile: ['name'], email: ['email'] },
  async findAccount(_ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    return { accountId: id, claims: () => ({ sub: id, name: account.name, email: account.email }) };
  },
  // Like Auth0 with offline_access allowed: a client that may refresh gets a refresh token (the
  // console's silent renewal), without oidc-provider's own rule that only prompt=consent grants one.
  async issueRefreshToken(_ctx, client, code) {
    return client.grantTypeAllowed('refresh_token') && (code.scopes.has('offline_access') || client.applicationType === 'web');
  },
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // The bridge names the relay's audience; a request without one still gets the relay's.
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo(_ctx, indicator) {
        if (indicator !== audience) throw new errors.InvalidTarget();
        return { scope: 'relay', audience, accessTokenTTL: accessTokenTtlS, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
      },
    },
  },
  ttl: { AccessToken: accessTokenTtlS, DeviceCode: 300, IdToken: 3600, RefreshToken: 24 * 3600, Grant: 24 * 3600, Session: 3600, Interaction: 600 },
  renderError(ctx, out) {
    ctx.type = 'json';
    ctx.body = out;
  },
});
provider.on('server_error', (_ctx, error) => process.stderr.write(`oidc-provider server_error: ${error.stack}\n`));

server.on('request', provider.callback());
process.stdout.write(`${JSON.stringify({ issuer })}\n`);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
