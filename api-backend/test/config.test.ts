import { loadConfig, ConfigError } from '../src/config';

const defaults = { proxyScript: '/tmp/proxy.js' };

describe('loadConfig', () => {
  it('runs on embedded defaults with nothing set', () => {
    const config = loadConfig({}, defaults);
    expect(config.port).toBe(8080);
    expect(config.auth.mode).toBe('dev');
    expect(config.proxy).toMatchObject({ driver: 'process', memoryMb: 512, cpus: 0.5, idleTimeoutMs: 600_000 });
    expect(config.requestTimeoutMs).toBe(30_000);
    expect(config.databaseUrl).toBeUndefined();
    expect(config.rateLimits).toEqual({ enabled: true, authFailures: 30, upgrades: 60, health: 120 });
  });

  it.each([
    ['PORT', 'eighty'],
    ['PROXY_DRIVER', 'kubernetes'],
    ['REQUEST_TIMEOUT_MS', '-1'],
    ['PROXY_SUBNET_POOL', '10.0.0.0'],
    ['LOG_LEVEL', 'chatty'],
    ['RATE_LIMIT_ENABLED', 'yes'],
    ['RATE_LIMIT_AUTH_FAILURES', '0'],
    ['RATE_LIMIT_HEALTH', 'lots'],
  ])('names the bad variable %s', (name, value) => {
    expect(() => loadConfig({ [name]: value }, defaults)).toThrow(new RegExp(`${name}="${value}"`));
  });

  it('refuses dev auth in production', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' }, defaults)).toThrow(ConfigError);
    expect(() => loadConfig({ NODE_ENV: 'production' }, defaults)).toThrow(/dev auth is refused in production/);
  });

  it('builds Auth0 issuer and JWKS from the domain', () => {
    const config = loadConfig({ AUTH0_DOMAIN: 'tenant.eu.auth0.com', AUTH0_AUDIENCE: 'https://relay' }, defaults);
    expect(config.auth).toEqual({
      mode: 'jwks',
      issuer: 'https://tenant.eu.auth0.com/',
      audience: 'https://relay',
      jwksUri: 'https://tenant.eu.auth0.com/.well-known/jwks.json',
    });
  });

  it('wants the JWT_* settings together', () => {
    expect(() => loadConfig({ JWT_ISSUER: 'https://idp' }, defaults)).toThrow(/JWT_AUDIENCE, JWT_JWKS_URI/);
  });
});
