/**
 * The proxy closes the links a revoked relay key opened: a real proxy server in this process, raw
 * WebSockets and plain HTTP requests playing api-backend (which names a relay key's id on every
 * link it hands over, and tells the proxy when the owner revokes it). End to end, with the real
 * api-backend and bridge: tests/key-revocation.e2e.test.ts.
 */
import WebSocket from 'ws';
import { CREDENTIAL_KEY_HEADER, KEY_REVOKED_CLOSE, KEY_REVOKED_PATH, PROXY_SECRET_HEADER } from '@ctll/protocol';
import { openRawDesktop, upgradeAnswer, type RawDesktop } from '../../tests/helpers/raw-desktop';
import { postToProxy, SECRET, startProxy, type TestProxy } from './helpers/proxy';

const KEY_A = '0b7a4a4e-9d0f-4c59-9a43-6d2b1f0c1a01';
const KEY_B = '5f1e2d3c-4b5a-4968-8776-655443322110';

let proxy: TestProxy;

beforeEach(async () => {
  proxy = await startProxy();
});
afterEach(() => proxy.close());

function desktopWithKey(keyId: string | undefined): Promise<RawDesktop> {
  const headers: Record<string, string> = { [PROXY_SECRET_HEADER]: SECRET };
  if (keyId !== undefined) headers[CREDENTIAL_KEY_HEADER] = keyId;
  return openRawDesktop(`${proxy.url.replace('http', 'ws')}/ws/tunnel`, headers, 5000);
}

const post = (path: string, headers: Record<string, string>, body = '{}') => postToProxy(proxy, path, headers, body);

const revoke = (keyId: string) => post(KEY_REVOKED_PATH, {}, JSON.stringify({ keyId }));

/** A WebSocket upgrade's answer when it is refused (101 when it is not). */
const upgradeStatus = (headers: Record<string, string>) =>
  upgradeAnswer(`${proxy.url.replace('http', 'ws')}/ws/tunnel`, { [PROXY_SECRET_HEADER]: SECRET, ...headers });

describe('revoking a relay key at the proxy', () => {
  it("closes the key's WebSocket tunnels with 4401 and the reason, and leaves a token's tunnel and another key's open", async () => {
    const [first, second, token, other] = await Promise.all([desktopWithKey(KEY_A), desktopWithKey(KEY_A), desktopWithKey(undefined), desktopWithKey(KEY_B)]);
    expect(proxy.hub.info()).toHaveLength(4);

    const answer = await revoke(KEY_A);
    expect(answer).toEqual({ status: 200, body: JSON.stringify({ closed: 2 }) });
    expect(await first.closed).toEqual({ code: KEY_REVOKED_CLOSE.code, reason: KEY_REVOKED_CLOSE.reason });
    expect(await second.closed).toEqual({ code: KEY_REVOKED_CLOSE.code, reason: KEY_REVOKED_CLOSE.reason });
    expect(proxy.hub.info()).toHaveLength(2);
    expect(token.ws.readyState).toBe(WebSocket.OPEN);
    expect(other.ws.readyState).toBe(WebSocket.OPEN);
    token.ws.terminate();
    other.ws.terminate();
  });

  it('refuses a new tunnel with the revoked key even if an api-backend still trusts its cached copy of the key', async () => {
    expect((await revoke(KEY_A)).body).toBe(JSON.stringify({ closed: 0 }));
    const refused = await upgradeStatus({ [CREDENTIAL_KEY_HEADER]: KEY_A });
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.body)).toEqual({ error: { code: 'unauthorized', message: 'invalid, revoked or expired relay key' } });
    const registered = await post('/bridge/register', { [CREDENTIAL_KEY_HEADER]: KEY_A });
    expect(registered.status).toBe(401);
    expect(proxy.hub.info()).toHaveLength(0);
    // Another key is not affected.
    expect((await upgradeStatus({ [CREDENTIAL_KEY_HEADER]: KEY_B })).status).toBe(101);
  });

  it("drops the key's polling bridge, whose next request is refused", async () => {
    const register = await post('/bridge/register', { [CREDENTIAL_KEY_HEADER]: KEY_A });
    expect(register.status).toBe(201);
    const { bridgeId } = JSON.parse(register.body) as { bridgeId: string };
    const byToken = await post('/bridge/register', {});
    expect(byToken.status).toBe(201);
    expect(proxy.hub.info()).toHaveLength(2);

    expect((await revoke(KEY_A)).body).toBe(JSON.stringify({ closed: 1 }));
    expect(proxy.hub.info()).toHaveLength(1);
    const heartbeat = await post(`/bridge/heartbeat/${bridgeId}`, { [CREDENTIAL_KEY_HEADER]: KEY_A }, '{"messages":[]}');
    expect(heartbeat.status).toBe(401);
  });

  it('answers only api-backend, and only a key id', async () => {
    const stranger = await post(KEY_REVOKED_PATH, { [PROXY_SECRET_HEADER]: 'x'.repeat(40) }, JSON.stringify({ keyId: KEY_A }));
    expect(stranger.status).toBe(401);
    for (const body of ['{}', '{"keyId":"ctll_not-an-id"}', 'not json']) {
      const answer = await post(KEY_REVOKED_PATH, {}, body);
      expect({ body, status: answer.status }).toEqual({ body, status: 400 });
    }
    // Nothing was revoked by the refused calls.
    expect((await upgradeStatus({ [CREDENTIAL_KEY_HEADER]: KEY_A })).status).toBe(101);
  });
});
