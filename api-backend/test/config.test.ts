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
    ['JWT_MAX_LIFETIME_S', 'forever'],
    ['JWKS_REFRESH_INTERVAL_MS', '0'],
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
      jwksRefreshIntervalMs: 30_000,
      jwksCacheMaxAgeMs: 60_000,
      maxLifetimeS: 7 * 24 * 3600,
    });
  });

  it('reads the token-check settings, for dev auth too', () => {
    const config = loadConfig({ JWKS_REFRESH_INTERVAL_MS: '5000', JWKS_CACHE_MAX_AGE_MS: '5000', JWT_MAX_LIFETIME_S: '3600' }, defaults);
    expect(config.auth).toMatchObject({ mode: 'dev', jwksRefreshIntervalMs: 5000, jwksCacheMaxAgeMs: 5000, maxLifetimeS: 3600 });
  });

  it('refuses a key cache max age shorter than the refresh interval, which could not be kept', () => {
    expect(() => loadConfig({ JWKS_REFRESH_INTERVAL_MS: '30000', JWKS_CACHE_MAX_AGE_MS: '10000' }, defaults)).toThrow(
      /JWKS_CACHE_MAX_AGE_MS=10000 must be at least JWKS_REFRESH_INTERVAL_MS=30000/,
    );
  });

  it('wants the JWT_* settings together', () => {
    expect(() => loadConfig({ JWT_ISSUER: 'https://idp' }, defaults)).toThrow(/JWT_AUDIENCE, JWT_JWKS_URI/);
  });

  it('puts /metrics on a private listener: loopback port 9464 unless told, any free port with 0, none with "off"', () => {
    expect(loadConfig({}, defaults).metrics).toEqual({ port: 9464, host: '127.0.0.1' });
    expect(loadConfig({ METRICS_PORT: '' }, defaults).metrics.port).toBe(9464);
    expect(loadConfig({ METRICS_PORT: '0' }, defaults).metrics.port).toBe(0);
    expect(loadConfig({ METRICS_PORT: 'off', METRICS_HOST: '0.0.0.0' }, defaults).metrics).toEqual({ port: null, host: '0.0.0.0' });
    expect(() => loadConfig({ METRICS_PORT: 'public' }, defaults)).toThrow(/METRICS_PORT="public": must be a port number/);
  });

  it('takes a proxy secret key of 64 hex digits only', () => {
    const key = 'ab'.repeat(32);
    expect(loadConfig({ PROXY_SECRET_KEY: key }, defaults).proxySecretKey).toBe(key);
    expect(loadConfig({ PROXY_SECRET_KEY: '' }, defaults).proxySecretKey).toBeUndefined();
    expect(() => loadConfig({ PROXY_SECRET_KEY: 'short' }, defaults)).toThrow(/PROXY_SECRET_KEY="short": must be 64 hex digits/);
  });
});
