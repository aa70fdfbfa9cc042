/**
 * A setting an operator gives api-backend that the user's proxy enforces must reach the proxy
 * under the same name with the same value (protocol/src/proxy-env.ts is the contract). Checked
 * on the written environment for every shared setting, then for real through a whole relay
 * (process driver): a lowered MAX_STREAMS_PER_TUNNEL and BRIDGE_GRACE_MS are what the desktop meets.
 */
import { proxyEnvSchema } from '@ctll/protocol';
import { loadConfig, settingsSchema } from '../api-backend/src/config';
import { proxyEnv } from '../api-backend/src/proxy/proxy-env';
import { loadConfig as loadProxyConfig } from '../streaming-proxy/src/config';
import { startLayout, type Layout } from './helpers/layout';

const defaults = { proxyScript: '/tmp/proxy.js' };
const input = { ownerHash: '0123456789abcdef', secret: 's'.repeat(64), host: '127.0.0.1', port: 0 };

/** Names both sides declare (the rest of the contract is per proxy: secret, owner, address). */
const SHARED = Object.keys(proxyEnvSchema.shape).filter((name) => name in settingsSchema.shape && !['HOST', 'PORT'].includes(name));

/** A valid value for each shared setting that differs from its default, as an operator would write it. */
const LOWERED: Record<string, string> = {
  LOG_LEVEL: 'warn',
  PROXY_API_BACKEND_URL: 'http://api-backend.internal:8080',
  ZROK_ALLOW_INSECURE: 'true',
  ZROK_SHARE_DOMAINS: 'zrok.example.org',
};

function lowered(name: string): string {
  return LOWERED[name] ?? '1234';
}

describe("the proxy's environment contract", () => {
  it('covers the settings the proxy enforces, under api-backend names', () => {
    expect(SHARED).toEqual(
      expect.arrayContaining(['BRIDGE_GRACE_MS', 'BRIDGE_POLL_TIMEOUT_MS', 'BRIDGE_MAX_QUEUE', 'MAX_STREAMS_PER_TUNNEL', 'PROXY_PING_INTERVAL_MS', 'USER_MAX_STREAMS']),
    );
    const proxyOnly = Object.keys(proxyEnvSchema.shape).filter((name) => !(name in settingsSchema.shape));
    // TEST_PROTOCOL_VERSION: tests only (tests/proxy-protocol-version.e2e.test.ts); api-backend never writes it.
    expect(proxyOnly.sort()).toEqual(['PROXY_SECRET', 'PROXY_USER_HASH', 'TEST_PROTOCOL_VERSION']);
  });

  it.each(SHARED)('hands %s given to api-backend to the proxy unchanged', (name) => {
    const env = proxyEnv(loadConfig({ [name]: lowered(name) }, defaults), input);
    expect(env[name]).toBe(lowered(name));
    expect(() => loadProxyConfig(env)).not.toThrow();
  });

  it('gives a proxy started by hand the same defaults api-backend would pass', () => {
    const written = proxyEnv(loadConfig({}, defaults), input);
    const byHand = proxyEnvSchema.parse({ PROXY_SECRET: input.secret }) as Record<string, unknown>;
    const differing = SHARED.filter((name) => name !== 'LOG_LEVEL' && written[name] !== undefined && written[name] !== [byHand[name]].flat().join(','));
    expect(differing).toEqual([]);
  });

  it('refuses to start a proxy with a value the proxy would reject, naming it', () => {
    const config = loadConfig({}, defaults);
    expect(() => proxyEnv(config, { ...input, secret: 'short' })).toThrow(/PROXY_SECRET: must be at least 32 characters/);
  });
});

describe('settings reach the desktop through a whole relay', () => {
  let layout: Layout;

  beforeAll(async () => {
    layout = await startLayout({ env: { MAX_STREAMS_PER_TUNNEL: '1', BRIDGE_GRACE_MS: '4500' }, llm: { tokenDelayMs: 20, tokens: 3 } });
  });
  afterAll(() => layout?.close());

  it('answers 429 too_many_streams to a second request at once on a desktop link when MAX_STREAMS_PER_TUNNEL=1', async () => {
    const user = 'one-at-a-time';
    await layout.connectBridge(user);
    const chat = () => layout.fetchAs(user, '/api/chat?delayMs=200', { method: 'POST', body: JSON.stringify({ model: 'm', messages: [], options: { num_predict: 5 } }) });
    const running = await chat();
    expect(running.status).toBe(200);

    const refused = await chat();
    expect(refused.status).toBe(429);
    expect(await refused.json()).toEqual({ error: { code: 'too_many_streams', message: 'at most 1 requests at once per tunnel' } });

    expect((await running.text()).trim().split('\n')).toHaveLength(6);
    expect((await layout.fetchAs(user, '/api/tags')).status).toBe(200);
  });

  it("tells a polling bridge BRIDGE_GRACE_MS as its grace, and a third of it as its heartbeat", async () => {
    const res = await fetch(`${layout.relay.url}/api/bridge/register`, {
      method: 'POST',
      headers: { authorization: `Bearer ${layout.token('poller')}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({ graceMs: 4500, heartbeatIntervalMs: 1500 });
  });
});
