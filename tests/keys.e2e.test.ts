/**
 * Relay keys as a user meets them, against two real api-backends sharing one PostgreSQL server
 * (required in CI) and a real JWKS endpoint standing in for the identity provider: a key made with
 * the user's own token, a script calling the user's model with the official ollama client and a
 * `call` key, a headless bridge connecting with a `bridge` key (WebSocket and long-poll), each
 * refused outside its scope, revoked keys refused on the other api-backend within 5 s, expired
 * keys refused, and the table read directly to show no key is kept in clear.
 */
import { createHash } from 'node:crypto';
import { Ollama } from 'ollama';
import type { CreatedRelayKey, RelayKeyView } from '@ctll/protocol';
import { startBridge, type Bridge } from '../bridge/src';
import { startLayout, waitFor, type Layout } from './helpers/layout';
import { upgradeAnswer } from './helpers/raw-desktop';
import { signingKey, signToken, startJwksServer, type JwksServer } from './helpers/jwks-server';
import { AUDIT_TEST_ENV, createTestDatabase, describeWithPostgres, type TestDatabase } from './helpers/postgres';

const ISSUER = 'https://idp.keys.test/';
const AUDIENCE = 'https://relay.keys.test';
/** What the README promises: a revoked key stops working on every api-backend within this. */
const REVOCATION_BOUND_MS = 5_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describeWithPostgres('relay keys on two api-backends sharing PostgreSQL', () => {
  const idpKey = signingKey('keys-test');
  let jwks: JwksServer;
  let db: TestDatabase;
  let a: Layout;
  let b: Layout;
  const bridges: Bridge[] = [];

  /** The user's own token, as the identity provider issues it. */
  const tokenOf = (sub: string) => signToken(idpKey, { sub }, { issuer: ISSUER, audience: AUDIENCE, expiresIn: 600 });

  const call = async (layout: Layout, method: string, route: string, credential: string, body?: unknown) => {
    const res = await fetch(`${layout.relay.url}${route}`, {
      method,
      headers: { authorization: `Bearer ${credential}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, text, json: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
  };

  const createKey = async (user: string, body: Record<string, unknown>, layout = a): Promise<CreatedRelayKey> => {
    const res = await call(layout, 'POST', '/api/keys', tokenOf(user), body);
    expect(res.status).toBe(201);
    return res.json as unknown as CreatedRelayKey;
  };

  const listKeys = async (user: string, layout = a): Promise<RelayKeyView[]> => {
    const res = await call(layout, 'GET', '/api/keys', tokenOf(user));
    expect(res.status).toBe(200);
    return (res.json as { keys: RelayKeyView[] }).keys;
  };

  const connectBridge = async (key: string, transport: 'ws' | 'poll') => {
    const bridge = startBridge({ server: a.relay.url, token: key, target: a.llm.url, transport });
    bridges.push(bridge);
    await bridge.waitConnected(15_000);
    return bridge;
  };

  const upgrade = (credential: string) => upgradeAnswer(`${a.relay.url.replace('http', 'ws')}/ws/tunnel`, { authorization: `Bearer ${credential}` });

  beforeAll(async () => {
    [jwks, db] = await Promise.all([startJwksServer([idpKey]), createTestDatabase()]);
    const env = { ...AUDIT_TEST_ENV, JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE, JWT_JWKS_URI: jwks.uri, DATABASE_URL: db.url };
    // Started together, as replicas are: the migrations' lock lets one of them build the schema.
    [a, b] = await Promise.all([startLayout({ env, llm: { tokenDelayMs: 5, tokens: 8 } }), startLayout({ env, llm: { tokenDelayMs: 5, tokens: 8 } })]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all(bridges.map((bridge) => bridge.close()));
    await Promise.all([a?.close(), b?.close()]);
    await jwks?.close();
    await db?.drop();
  }, 30_000);

  it('shows a new key once, keeps only its SHA-256, and lists it without the key', async () => {
    const created = await createKey('alice', { name: 'laptop script', scope: 'call' });
    expect(created).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      name: 'laptop script',
      scope: 'call',
      createdAt: expect.any(String),
      expiresAt: null,
      lastUsedAt: null,
      key: expect.stringMatching(/^ctll_[A-Za-z0-9_-]{43}$/),
      userId: 'alice',
    });
    const secret = created.key.slice('ctll_'.length);

    const listed = await call(a, 'GET', '/api/keys', tokenOf('alice'));
    expect(JSON.parse(listed.text)).toEqual({
      keys: [{ id: created.id, name: 'laptop script', scope: 'call', createdAt: created.createdAt, expiresAt: null, lastUsedAt: null }],
    });

    // The table as an operator (or a thief of a backup) sees it.
    const rows = await db.query('SELECT * FROM relay_keys WHERE id = $1', [created.id]);
    expect(rows).toHaveLength(1);
    expect(rows[0].key_hash).toBe(createHash('sha256').update(created.key).digest('hex'));
    expect(JSON.stringify(rows)).not.toContain(secret);
    expect(listed.text).not.toContain(secret);
    expect(listed.text).not.toContain(rows[0].key_hash as string);
  });

  it.each(['ws', 'poll'] as const)(
    'connects a headless bridge over %s with a bridge key, and a script chats through it with a call key (official ollama client)',
    async (transport) => {
      const user = `bob-${transport}`;
      const bridgeKey = await createKey(user, { name: 'home pc', scope: 'bridge' });
      const callKey = await createKey(user, { name: 'script', scope: 'call' });
      await connectBridge(bridgeKey.key, transport);

      const ollama = new Ollama({ host: a.tunnelUrl(user), headers: { Authorization: `Bearer ${callKey.key}` } });
      let text = '';
      for await (const part of await ollama.chat({ model: 'test-model', messages: [{ role: 'user', content: 'Hello' }], stream: true })) {
        text += part.message.content;
      }
      expect(text).toBe('tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7 ');

      // Each key's use is recorded as its last use.
      let keys: RelayKeyView[] = [];
      await waitFor(async () => (keys = await listKeys(user)).every((key) => key.lastUsedAt !== null), 10_000, 'both keys to show a last use');
      for (const key of keys) expect(Date.parse(key.lastUsedAt!)).toBeGreaterThanOrEqual(Date.parse(key.createdAt));
    },
  );

  it('refuses each key outside its scope with 403 key_scope, and any key on the key routes', async () => {
    const callKey = await createKey('carol', { name: 'script', scope: 'call' });
    const bridgeKey = await createKey('carol', { name: 'pc', scope: 'bridge' });

    // A call key cannot connect a desktop, by WebSocket or long-poll.
    const refusedUpgrade = await upgrade(callKey.key);
    expect(refusedUpgrade.status).toBe(403);
    expect(JSON.parse(refusedUpgrade.body)).toEqual({ error: { code: 'key_scope', message: expect.stringContaining('`call` key') } });
    const register = await call(a, 'POST', '/api/bridge/register', callKey.key, {});
    expect(register.status).toBe(403);
    expect(register.json).toEqual({ error: { code: 'key_scope', message: expect.stringContaining('make a `bridge` key') } });

    // A bridge key cannot call the tunnel: a script using it is told so.
    const ollama = new Ollama({ host: a.tunnelUrl('carol'), headers: { Authorization: `Bearer ${bridgeKey.key}` } });
    await expect(ollama.list()).rejects.toMatchObject({ status_code: 403, error: { code: 'key_scope', message: expect.stringContaining('make a `call` key') } });

    // No key makes, lists or revokes keys, or controls the proxy: only the user's own token.
    for (const key of [callKey.key, bridgeKey.key]) {
      for (const [method, route, body] of [
        ['POST', '/api/keys', { name: 'more', scope: 'call' }],
        ['GET', '/api/keys', undefined],
        ['DELETE', `/api/keys/${callKey.id}`, undefined],
        ['GET', '/api/proxy/status', undefined],
      ] as const) {
        const res = await call(a, method, route, key, body);
        expect({ route, status: res.status, code: (res.json?.error as { code?: string })?.code }).toEqual({ route, status: 403, code: 'key_scope' });
      }
    }
    expect((await listKeys('carol')).map((key) => key.name).sort()).toEqual(['pc', 'script']);
  });

  it("shows and revokes only the user's own keys: another user's key id is a 404 and the key keeps working", async () => {
    const erin = await createKey('erin', { name: 'erin script', scope: 'call' });
    expect(await listKeys('frank')).toEqual([]);
    const revoke = await call(a, 'DELETE', `/api/keys/${erin.id}`, tokenOf('frank'));
    expect(revoke.status).toBe(404);
    expect(revoke.json).toEqual({ error: { code: 'not_found', message: expect.any(String) } });
    expect((await call(a, 'GET', '/api/tunnel/erin/health', erin.key)).status).toBe(200);
    // And erin's key is for erin's tunnel only.
    expect((await call(a, 'GET', '/api/tunnel/frank/health', erin.key)).status).toBe(403);
  });

  it('refuses a revoked key at once where it was revoked and within 5 s on the other api-backend', async () => {
    const dave = await createKey('dave', { name: 'cron job', scope: 'call' }, b);
    // Both api-backends have checked (and cached) the key.
    expect((await call(a, 'GET', '/api/tunnel/dave/health', dave.key)).status).toBe(200);
    expect((await call(b, 'GET', '/api/tunnel/dave/health', dave.key)).status).toBe(200);

    expect((await call(a, 'DELETE', `/api/keys/${dave.id}`, tokenOf('dave'))).status).toBe(204);
    const revokedAt = Date.now();
    const here = await call(a, 'GET', '/api/tunnel/dave/health', dave.key);
    expect(here.status).toBe(401);
    expect(here.json).toEqual({ error: { code: 'unauthorized', message: 'invalid, revoked or expired relay key' } });

    // Polled from the revocation on; waitFor fails the test if the bound passes first.
    await waitFor(
      async () => (await call(b, 'GET', '/api/tunnel/dave/health', dave.key)).status === 401,
      REVOCATION_BOUND_MS - (Date.now() - revokedAt),
      'the other api-backend to refuse the revoked key',
    );
    expect(await listKeys('dave', b)).toEqual([]);
    expect(await db.query('SELECT id FROM relay_keys WHERE id = $1', [dave.id])).toEqual([]);
    // Revoking it again finds nothing.
    expect((await call(b, 'DELETE', `/api/keys/${dave.id}`, tokenOf('dave'))).status).toBe(404);
  });

  it('honours a key expiry: accepted until then, refused with 401 after', async () => {
    const expiresAt = new Date(Date.now() + 1_500);
    const key = await createKey('gina', { name: 'short', scope: 'call', expiresAt: expiresAt.toISOString() });
    expect(key.expiresAt).toBe(expiresAt.toISOString());
    expect((await call(b, 'GET', '/api/tunnel/gina/health', key.key)).status).toBe(200);
    await sleep(expiresAt.getTime() - Date.now() + 100);
    const refused = await call(b, 'GET', '/api/tunnel/gina/health', key.key);
    expect(refused.status).toBe(401);
    expect(refused.json).toEqual({ error: { code: 'unauthorized', message: 'invalid, revoked or expired relay key' } });
  });

  it('refuses a malformed request for a key, a made-up key, and a key from no token with clear errors', async () => {
    for (const body of [{ name: 'x', scope: 'admin' }, { name: '', scope: 'call' }, { name: 'x', scope: 'call', expiresAt: '2001-01-01T00:00:00Z' }, { name: 'x', scope: 'call', extra: 1 }]) {
      const res = await call(a, 'POST', '/api/keys', tokenOf('hank'), body);
      expect({ body, status: res.status, code: (res.json?.error as { code?: string })?.code }).toEqual({ body, status: 400, code: 'bad_request' });
    }
    expect(await listKeys('hank')).toEqual([]);
    const madeUp = `ctll_${'A'.repeat(43)}`;
    const res = await call(a, 'GET', '/api/tunnel/hank/health', madeUp);
    expect(res.status).toBe(401);
    const anonymous = await fetch(`${a.relay.url}/api/keys`, { method: 'POST', body: '{}' });
    expect(anonymous.status).toBe(401);
  });
});
