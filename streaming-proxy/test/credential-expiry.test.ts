/**
 * The proxy ends desktop links whose credential ran out: a real proxy server in this process, a
 * raw WebSocket and plain HTTP requests playing api-backend's forwarded tunnel and poll requests
 * (with the credential-expiry header api-backend adds). Verifying a renewal needs api-backend and
 * is tested end to end (tests/token-renewal.e2e.test.ts); here the proxy runs without one.
 */
import { CREDENTIAL_EXPIRES_HEADER, encodeControl, PROXY_SECRET_HEADER, TOKEN_EXPIRED_CLOSE, type ControlMessage } from '@ctll/protocol';
import { openRawDesktop, type RawDesktop } from '../../tests/helpers/raw-desktop';
import { postToProxy, SECRET, startProxy, type TestProxy } from './helpers/proxy';

const GRACE_MS = 300;
let proxy: TestProxy;

beforeEach(async () => {
  proxy = await startProxy({ TOKEN_EXPIRY_GRACE_MS: String(GRACE_MS) });
});
afterEach(() => proxy.close());

function desktopExpiringAt(expiresAt: number | undefined): Promise<RawDesktop> {
  const headers: Record<string, string> = { [PROXY_SECRET_HEADER]: SECRET };
  if (expiresAt !== undefined) headers[CREDENTIAL_EXPIRES_HEADER] = String(expiresAt);
  return openRawDesktop(`${proxy.url.replace('http', 'ws')}/ws/tunnel`, headers, 5000);
}

async function nextError(desktop: RawDesktop): Promise<Extract<ControlMessage, { type: 'error' }>> {
  for (;;) {
    const message = await desktop.next();
    if (message.type === 'error') return message;
  }
}

const post = (path: string, headers: Record<string, string>, body = '{}') => postToProxy(proxy, path, headers, body);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('a WebSocket tunnel', () => {
  it('whose credential expired is closed with 4401 and the sign-in hint once the grace is over, not before', async () => {
    const expiresAt = Date.now() + 400;
    const desktop = await desktopExpiringAt(expiresAt);
    expect(await desktop.closed).toEqual({ code: TOKEN_EXPIRED_CLOSE.code, reason: TOKEN_EXPIRED_CLOSE.reason });
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt + GRACE_MS);
    expect(proxy.hub.info()).toHaveLength(0);
  });

  it('opened with a credential that never expires (no expiry header, as for a relay key) is not closed', async () => {
    const desktop = await desktopExpiringAt(undefined);
    await sleep(GRACE_MS * 3);
    expect(desktop.ws.readyState).toBe(desktop.ws.OPEN);
    expect(proxy.hub.info()).toHaveLength(1);
    desktop.ws.close();
  });

  it('whose renewal cannot be checked (no api-backend to ask) gets token_unavailable and still closes at its deadline', async () => {
    const expiresAt = Date.now() + 500;
    const desktop = await desktopExpiringAt(expiresAt);
    desktop.ws.send(encodeControl({ type: 'token', token: 'a.fresh.token' }));
    expect(await nextError(desktop)).toMatchObject({ code: 'token_unavailable' });
    expect(await desktop.closed).toEqual({ code: TOKEN_EXPIRED_CLOSE.code, reason: TOKEN_EXPIRED_CLOSE.reason });
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt + GRACE_MS);
  });

  it('answers a token message that carries no usable token with bad_message and stays up', async () => {
    const desktop = await desktopExpiringAt(Date.now() + 60_000);
    desktop.ws.send(JSON.stringify({ type: 'token', token: 'two words' }));
    expect(await nextError(desktop)).toMatchObject({ code: 'bad_message', message: expect.stringMatching(/token/) });
    desktop.ws.send(JSON.stringify({ type: 'token' }));
    expect(await nextError(desktop)).toMatchObject({ code: 'bad_message' });
    expect(desktop.ws.readyState).toBe(desktop.ws.OPEN);
    desktop.ws.close();
  });
});

describe('a polling bridge', () => {
  async function register(expiresAt: number): Promise<string> {
    const answer = await post('/bridge/register', { [CREDENTIAL_EXPIRES_HEADER]: String(expiresAt) });
    expect(answer.status).toBe(201);
    return (JSON.parse(answer.body) as { bridgeId: string }).bridgeId;
  }

  it('whose requests stopped bringing a newer credential is dropped once its expiry and the grace are over', async () => {
    const bridgeId = await register(Date.now() + 300);
    await sleep(300 + GRACE_MS + 400);
    expect(proxy.hub.info()).toHaveLength(0);
    const late = await post(`/bridge/heartbeat/${bridgeId}`, {}, '{"messages":[]}');
    expect(late.status).toBe(404);
  });

  it('is kept while a later request carries a credential expiring later, even if an older token arrives after it', async () => {
    const bridgeId = await register(Date.now() + 300);
    const renewed = await post(`/bridge/heartbeat/${bridgeId}`, { [CREDENTIAL_EXPIRES_HEADER]: String(Date.now() + 60_000) }, '{"messages":[]}');
    expect(renewed.status).toBe(200);
    // A request begun with the old token, answered after the renewal, must not shorten the deadline.
    await post(`/bridge/heartbeat/${bridgeId}`, { [CREDENTIAL_EXPIRES_HEADER]: String(Date.now() + 300) }, '{"messages":[]}');
    await sleep(300 + GRACE_MS + 400);
    expect(proxy.hub.info()).toHaveLength(1);
  });
});
