import { ConfigError, loadConfig } from '../src/config';
import { proxyEnv } from '../src/proxy/proxy-env';

const defaults = { proxyScript: '/tmp/proxy.js' };
const production = { NODE_ENV: 'production', AUTH0_DOMAIN: 'tenant.eu.auth0.com', AUTH0_AUDIENCE: 'https://relay' };

describe('zrok settings', () => {
  it('defaults to the safe policy', () => {
    expect(loadConfig({}, defaults).zrok).toEqual({
      shareTtlMs: 90_000,
      discoveryIntervalMs: 10_000,
      allowInsecure: false,
      shareDomains: ['share.zrok.io'],
    });
  });

  it('refuses ZROK_ALLOW_INSECURE=true in production and allows it elsewhere', () => {
    expect(() => loadConfig({ ...production, ZROK_ALLOW_INSECURE: 'true' }, defaults)).toThrow(ConfigError);
    expect(() => loadConfig({ ...production, ZROK_ALLOW_INSECURE: 'true' }, defaults)).toThrow(/ZROK_ALLOW_INSECURE=true is refused when NODE_ENV=production/);
    expect(loadConfig({ ...production, ZROK_ALLOW_INSECURE: 'false' }, defaults).zrok.allowInsecure).toBe(false);
    expect(loadConfig({ ZROK_ALLOW_INSECURE: 'true' }, defaults).zrok.allowInsecure).toBe(true);
  });

  it('takes the allowed zrok frontends as a normalised list and refuses one that is not a host', () => {
    expect(loadConfig({ ZROK_SHARE_DOMAINS: ' Share.Zrok.IO , zrok.example.org.' }, defaults).zrok.shareDomains).toEqual(['share.zrok.io', 'zrok.example.org']);
    expect(() => loadConfig({ ZROK_SHARE_DOMAINS: 'https://share.zrok.io' }, defaults)).toThrow(/ZROK_SHARE_DOMAINS="https:\/\/share.zrok.io"/);
    expect(() => loadConfig({ ZROK_SHARE_DOMAINS: ' , ' }, defaults)).toThrow(/ZROK_SHARE_DOMAINS must name at least one host/);
  });

  it.each([
    ['ZROK_ALLOW_INSECURE', 'yes'],
    ['ZROK_SHARE_TTL_MS', '10'],
    ['ZROK_DISCOVERY_INTERVAL_MS', 'often'],
    ['PROXY_API_BACKEND_URL', 'not a url'],
  ])('names the bad variable %s', (name, value) => {
    expect(() => loadConfig({ [name]: value }, defaults)).toThrow(new RegExp(`${name}="${value}"`));
  });

  it('hands every proxy the discovery settings, and api-backend’s address when known', () => {
    const config = loadConfig({ ZROK_DISCOVERY_INTERVAL_MS: '500', PROXY_API_BACKEND_URL: 'http://api-backend:8080/' }, defaults);
    const base = { ownerHash: '0123456789abcdef', secret: 's'.repeat(64), host: '0.0.0.0', port: 8080 };
    expect(proxyEnv(config, base)).toMatchObject({ PROXY_API_BACKEND_URL: 'http://api-backend:8080', ZROK_DISCOVERY_INTERVAL_MS: '500', ZROK_ALLOW_INSECURE: 'false', ZROK_SHARE_DOMAINS: 'share.zrok.io' });
    expect(proxyEnv(config, { ...base, apiBackendUrl: 'http://127.0.0.1:9' }).PROXY_API_BACKEND_URL).toBe('http://127.0.0.1:9');
    expect(proxyEnv(loadConfig({}, defaults), base)).not.toHaveProperty('PROXY_API_BACKEND_URL');
  });
});
