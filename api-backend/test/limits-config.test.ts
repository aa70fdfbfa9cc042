import { loadConfig, ConfigError } from '../src/config';
import { proxyEnv } from '../src/proxy/proxy-env';
import { loadConfig as loadProxyConfig } from '../../streaming-proxy/src/config';

const defaults = { proxyScript: '/tmp/proxy.js' };
const proxyInput = { ownerHash: '0123456789abcdef', secret: 's'.repeat(64), host: '127.0.0.1', port: 0 };

describe('limit settings', () => {
  it('bounds every user by default, far above what one person uses', () => {
    const config = loadConfig({}, defaults);
    expect(config.userLimits).toEqual({ ratePerMinute: 600, rateBurst: 120, maxStreams: 100, maxWsLinks: 4, maxPollLinks: 4 });
    expect(config.proxyLimits).toEqual({ max: 200, startRatePerMinute: 10 });
  });

  it('caps docker proxies at 1000, or at the networks the subnet pool holds when that is fewer', () => {
    expect(loadConfig({ PROXY_DRIVER: 'docker' }, defaults).proxyLimits.max).toBe(1000);
    expect(loadConfig({ PROXY_DRIVER: 'docker', PROXY_MAX: '' }, defaults).proxyLimits.max).toBe(1000);
    expect(loadConfig({ PROXY_DRIVER: 'docker', PROXY_SUBNET_PREFIX: '24' }, defaults).proxyLimits.max).toBe(256);
  });

  it('refuses a PROXY_MAX the subnet pool cannot hold, naming both settings', () => {
    const load = () => loadConfig({ PROXY_DRIVER: 'docker', PROXY_SUBNET_PREFIX: '24', PROXY_MAX: '300' }, defaults);
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(/PROXY_MAX=300 is more than the 256 networks PROXY_SUBNET_POOL=10.200.0.0\/16 holds/);
  });

  it.each([['USER_MAX_STREAMS', '0'], ['USER_RATE_PER_MINUTE', 'lots'], ['PROXY_MAX', '-1']])('names the bad variable %s', (name, value) => {
    expect(() => loadConfig({ [name]: value }, defaults)).toThrow(new RegExp(`${name}="${value}"`));
  });

  it("hands an operator's lowered limits to the user's proxy under the names it reads", () => {
    const config = loadConfig(
      { USER_RATE_PER_MINUTE: '60', USER_RATE_BURST: '7', USER_MAX_STREAMS: '9', USER_MAX_WS_LINKS: '1', USER_MAX_POLL_LINKS: '2', MAX_BODY_BYTES: '4096' },
      defaults,
    );
    const proxy = loadProxyConfig(proxyEnv(config, proxyInput));
    expect(proxy.limits).toEqual({ ratePerMinute: 60, rateBurst: 7, maxStreams: 9, maxWsLinks: 1, maxPollLinks: 2, maxBodyBytes: 4096 });
  });
});
