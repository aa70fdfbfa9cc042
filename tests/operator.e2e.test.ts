/**
 * The operator's view and a user's own usage, against the real relay (process driver, dev auth
 * through the relay's own JWKS, embedded audit database), real bridges over WebSocket and
 * long-poll, and the slow test LLM server. Operators are callers whose token carries
 * ADMIN_CLAIM (here `roles=ctll-admin`): tokens are signed with the dev issuer's key, with the
 * claims each test needs.
 */
import {
  meSchema,
  meUsageSchema,
  operatorOverviewSchema,
  operatorStopSchema,
  type CreatedRelayKey,
  type OperatorOverview,
} from '@ctll/protocol';
import { userHash } from '../api-backend/src/proxy/naming';
import type { Bridge } from '../bridge/src';
import { startLayout, waitFor, type Layout } from './helpers/layout';

const PROXY_MAX = 5;

describe("the operator's view and a user's usage", () => {
  let layout: Layout;
  let danaBridge: Bridge;

  beforeAll(async () => {
    layout = await startLayout({ env: { ADMIN_CLAIM: 'roles=ctll-admin', PROXY_MAX: String(PROXY_MAX) } });
  }, 60_000);
  afterAll(() => layout?.close());

  const tokenWith = (sub: string, claims: object = {}) => layout.token(sub, claims);
  const operatorToken = () => tokenWith('olga', { roles: ['viewer', 'ctll-admin'] });

  const call = async (method: string, route: string, credential: string, body?: unknown) => {
    const res = await fetch(`${layout.relay.url}${route}`, {
      method,
      headers: { authorization: `Bearer ${credential}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, text, json: text ? (JSON.parse(text) as unknown) : undefined };
  };

  const overview = async (): Promise<{ text: string; body: OperatorOverview }> => {
    const res = await call('GET', '/api/admin/overview', operatorToken());
    expect(res.status).toBe(200);
    return { text: res.text, body: operatorOverviewSchema.parse(res.json) };
  };

  it('refuses the operator routes with 403 not_operator to a signed-in user without the operator claim', async () => {
    const notOperators = [
      tokenWith('alice'),
      tokenWith('alice', { roles: ['viewer'] }),
      tokenWith('alice', { roles: 'ctll-admin-readonly' }),
      // The right value under another claim is not the claim.
      tokenWith('alice', { groups: ['ctll-admin'] }),
    ];
    for (const token of notOperators) {
      for (const [method, route] of [
        ['GET', '/api/admin/overview'],
        ['POST', `/api/admin/proxies/${userHash('bob')}/stop`],
      ]) {
        const res = await call(method, route, token);
        expect({ route, status: res.status, body: res.json }).toMatchObject({ route, status: 403, body: { error: { code: 'not_operator' } } });
      }
      expect(meSchema.parse((await call('GET', '/api/me', token)).json)).toEqual({ userId: 'alice', owner: userHash('alice'), operator: false });
    }
    // The claim as a plain string counts as well as in a list.
    expect((await call('GET', '/api/admin/overview', tokenWith('olga', { roles: 'ctll-admin' }))).status).toBe(200);
    expect(meSchema.parse((await call('GET', '/api/me', operatorToken())).json)).toEqual({ userId: 'olga', owner: userHash('olga'), operator: true });
  });

  it('shows an operator every proxy by owner hash only, with its desktop, memory, capacity and the desktops by transport', async () => {
    await layout.connectBridge('alice', { transport: 'ws' });
    await layout.connectBridge('bob', { transport: 'poll' });
    const { text, body } = await overview();

    expect(body.driver).toBe('process');
    expect(body.capacity).toEqual({ running: 2, max: PROXY_MAX });
    expect(body.desktops).toEqual({ ws: 1, poll: 1, zrok: 0 });
    const byOwner = new Map(body.proxies.map((proxy) => [proxy.owner, proxy]));
    expect([...byOwner.keys()].sort()).toEqual([userHash('alice'), userHash('bob')].sort());
    expect(byOwner.get(userHash('alice'))).toMatchObject({ state: 'running', transport: 'ws', reachable: true, activeRequests: 0 });
    expect(byOwner.get(userHash('bob'))).toMatchObject({ state: 'running', transport: 'poll', reachable: true });
    for (const proxy of body.proxies) {
      expect(proxy.memoryBytes).toBeGreaterThan(1024 * 1024);
      expect(proxy.idleMs).toBeGreaterThanOrEqual(0);
      expect(proxy.ageMs).toBeGreaterThanOrEqual(0);
    }
    // Hashes only: no user id anywhere in the answer.
    expect(text).not.toMatch(/alice|bob|olga/);
    // This look is the chart's point for the current minute.
    expect(body.series.at(-1)).toEqual({ at: expect.any(String), proxies: 2, desktops: { ws: 1, poll: 1, zrok: 0 } });
  });

  it("the idle sweep's look at the proxies becomes a point of the operator's chart", async () => {
    danaBridge = await layout.connectBridge('dana', { transport: 'ws' });
    await layout.relay.manager.sweep();
    const { body } = await overview();
    expect(body.series.at(-1)).toMatchObject({ proxies: 3, desktops: { ws: 2, poll: 1, zrok: 0 } });
    expect(body.series.length).toBeGreaterThanOrEqual(1);
    expect(body.series.length).toBeLessThanOrEqual(60);
  });

  it("lets an operator stop a user's proxy, which the user's own audit records with reason operator", async () => {
    // A connected bridge would dial in again at once and start a new proxy.
    await danaBridge.close();
    const stopped = await call('POST', `/api/admin/proxies/${userHash('dana')}/stop`, operatorToken());
    expect(stopped.status).toBe(200);
    expect(operatorStopSchema.parse(stopped.json)).toEqual({ owner: userHash('dana'), stopped: true });

    const dana = tokenWith('dana');
    expect((await call('GET', '/api/proxy/status', dana)).json).toMatchObject({ status: 'not-found' });
    const { body } = await overview();
    expect(body.proxies.map((proxy) => proxy.owner)).not.toContain(userHash('dana'));

    await waitFor(
      async () => {
        const sessions = (await call('GET', '/api/audit/sessions', dana)).json as { sessions: Array<{ kind: string; reason: string | null }> };
        return sessions.sessions.some((session) => session.kind === 'proxy' && session.reason === 'operator');
      },
      10_000,
      "dana's proxy session closed with reason operator",
    );

    // A second stop finds nothing; a malformed hash is refused before anything is looked up.
    expect((await call('POST', `/api/admin/proxies/${userHash('dana')}/stop`, operatorToken())).json).toEqual({ owner: userHash('dana'), stopped: false });
    const malformed = await call('POST', '/api/admin/proxies/dana/stop', operatorToken());
    expect(malformed).toMatchObject({ status: 400, json: { error: { code: 'bad_request' } } });
  });

  it("never takes a relay key for an operator, not even one the operator made", async () => {
    for (const scope of ['call', 'bridge']) {
      const made = await call('POST', '/api/keys', operatorToken(), { name: `olga ${scope}`, scope });
      expect(made.status).toBe(201);
      const { key } = made.json as CreatedRelayKey;
      const refused = await call('GET', '/api/admin/overview', key);
      expect(refused.status).toBe(403);
      expect(refused.text).not.toContain('proxies');
      expect((await call('POST', `/api/admin/proxies/${userHash('alice')}/stop`, key)).status).toBe(403);
    }
    // alice's proxy is still there.
    expect((await call('GET', '/api/proxy/status', tokenWith('alice'))).json).toMatchObject({ status: 'running' });
  });

  it('counts the error answers of the last hour by code', async () => {
    const before = (await overview()).body.errors.find((entry) => entry.code === 'not_found')?.count ?? 0;
    for (let i = 0; i < 3; i += 1) expect((await call('GET', '/api/no-such-route', tokenWith('alice'))).status).toBe(404);
    const { body } = await overview();
    expect(body.errors.find((entry) => entry.code === 'not_found')).toMatchObject({ status: 404, count: before + 3 });
    expect(body.errors.find((entry) => entry.code === 'not_operator')).toMatchObject({ status: 403 });
  });

  it("counts a user's requests and bytes, today and per minute, and shows each user only their own", async () => {
    await layout.connectBridge('carol');
    const answers: string[] = [];
    for (let i = 0; i < 3; i += 1) {
      const res = await layout.fetchAs('carol', '/api/tags');
      expect(res.status).toBe(200);
      answers.push(await res.text());
    }
    const answerBytes = answers.reduce((sum, text) => sum + Buffer.byteLength(text), 0);

    const usage = meUsageSchema.parse((await call('GET', '/api/me/usage', tokenWith('carol'))).json);
    if (!usage.running) throw new Error('carol has a proxy running');
    expect(usage.today).toMatchObject({ requests: 3, bytesFromDesktop: answerBytes, bytesToDesktop: 0 });
    expect(usage.minutes).toHaveLength(60);
    const sum = (key: 'requests' | 'bytesFromDesktop') => usage.minutes.reduce((total, minute) => total + minute[key], 0);
    expect(sum('requests')).toBe(3);
    expect(sum('bytesFromDesktop')).toBe(answerBytes);
    expect(Date.parse(usage.minutes.at(-1)!.at)).toBeLessThanOrEqual(Date.now());

    // bob's proxy relayed none of carol's requests; erin has no proxy at all.
    const bob = meUsageSchema.parse((await call('GET', '/api/me/usage', tokenWith('bob'))).json);
    expect(bob).toMatchObject({ running: true, today: { requests: 0 } });
    expect(meUsageSchema.parse((await call('GET', '/api/me/usage', tokenWith('erin'))).json)).toEqual({ running: false });
    // Reading usage never starts a proxy.
    expect((await call('GET', '/api/proxy/status', tokenWith('erin'))).json).toMatchObject({ status: 'not-found' });
  });
});
