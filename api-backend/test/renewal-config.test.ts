import { loadConfig } from '../src/config';
import { proxyEnv } from '../src/proxy/proxy-env';
import { loadConfig as loadProxyConfig } from '../../streaming-proxy/src/config';

const defaults = { proxyScript: '/tmp/proxy.js' };
const proxyInput = { ownerHash: '0123456789abcdef', secret: 's'.repeat(64), host: '127.0.0.1', port: 0 };

describe('TOKEN_EXPIRY_GRACE_MS', () => {
  it('gives an unrenewed tunnel 30 s past its token by default, in api-backend and in the proxy it starts', () => {
    const config = loadConfig({}, defaults);
    expect(config.tokenExpiryGraceMs).toBe(30_000);
    expect(loadProxyConfig(proxyEnv(config, proxyInput)).tokenExpiryGraceMs).toBe(30_000);
  });

  it("hands an operator's grace to the user's proxy, which enforces it", () => {
    const config = loadConfig({ TOKEN_EXPIRY_GRACE_MS: '5000' }, defaults);
    expect(loadProxyConfig(proxyEnv(config, proxyInput)).tokenExpiryGraceMs).toBe(5_000);
  });

  it('names the variable when the grace is not a number of milliseconds', () => {
    expect(() => loadConfig({ TOKEN_EXPIRY_GRACE_MS: '-1' }, defaults)).toThrow(/TOKEN_EXPIRY_GRACE_MS/);
  });
});
