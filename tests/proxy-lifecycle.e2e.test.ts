/**
 * The StreamingProxyManager through the HTTP API with the process driver: idempotent concurrent
 * starts, stop, idle culling, a crashed proxy, shutdown. (The docker driver has its own suite.)
 */
import { startLayout, waitFor, type Layout } from './helpers/layout';

interface StatusBody {
  status: string;
  created?: boolean;
  desktop?: { connected: boolean };
}

describe('proxy lifecycle (process driver)', () => {
  let layout: Layout;

  beforeAll(async () => {
    layout = await startLayout();
  });
  afterAll(() => layout?.close());

  const call = async (method: 'GET' | 'POST', route: string, userId: string): Promise<{ status: number; body: StatusBody }> => {
    const res = await fetch(`${layout.relay.url}${route}`, { method, headers: { authorization: `Bearer ${layout.token(userId)}` } });
    return { status: res.status, body: (await res.json()) as StatusBody };
  };

  it('makes one proxy for fifty concurrent starts', async () => {
    const results = await Promise.all(Array.from({ length: 50 }, () => call('POST', '/api/proxy/start', 'dave')));
    expect(results.every((r) => r.body.status === 'running')).toBe(true);
    expect(results.filter((r) => r.status === 201 && r.body.created)).toHaveLength(1);
    expect(results.filter((r) => r.status === 200 && r.body.created === false)).toHaveLength(49);
    expect(await layout.relay.manager.driver.list()).toHaveLength(1);
  });

  it('stops the proxy on request and says so', async () => {
    expect((await call('POST', '/api/proxy/stop', 'dave')).body).toMatchObject({ status: 'stopped' });
    expect((await call('GET', '/api/proxy/status', 'dave')).body).toMatchObject({ status: 'not-found' });
    expect((await call('POST', '/api/proxy/stop', 'dave')).body).toMatchObject({ status: 'not-found' });
    expect(await layout.relay.manager.driver.list()).toHaveLength(0);
  });

  it('recovers from a crashed proxy: the bridge reconnects and a new proxy serves it', async () => {
    await layout.connectBridge('busy-user');
    const [before] = (await layout.relay.manager.driver.list()).filter((h) => h.state === 'running');
    process.kill(Number(before.id), 'SIGKILL');
    await waitFor(async () => (await layout.fetchAs('busy-user', '/api/tags')).status === 200, 15_000, 'a new proxy to serve the bridge');
    const [after] = await layout.relay.manager.driver.list();
    expect(after.id).not.toBe(before.id);
  });

  it('starts the proxy on the first tunnel connection', async () => {
    expect((await call('GET', '/api/proxy/status', 'erin')).body.status).toBe('not-found');
    await layout.connectBridge('erin');
    expect((await call('GET', '/api/proxy/status', 'erin')).body).toMatchObject({ status: 'running', desktop: { connected: true } });
  });

  it('stops every proxy process on shutdown', async () => {
    const pids = (await layout.relay.manager.driver.list()).map((h) => Number(h.id));
    expect(pids.length).toBeGreaterThan(0);
    await layout.relay.close();
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
  });
});

describe('idle culling (process driver)', () => {
  let layout: Layout;

  beforeAll(async () => {
    // The sweep runs every second here, and a proxy with no desktop is idle after 400 ms.
    layout = await startLayout({ env: { PROXY_IDLE_TIMEOUT_MS: '400', PROXY_CLEANUP_CRON: '* * * * * *' } });
  });
  afterAll(() => layout?.close());

  const call = async (method: 'GET' | 'POST', route: string, userId: string): Promise<{ status: number; body: StatusBody }> => {
    const res = await fetch(`${layout.relay.url}${route}`, { method, headers: { authorization: `Bearer ${layout.token(userId)}` } });
    return { status: res.status, body: (await res.json()) as StatusBody };
  };

  it('culls a proxy with no desktop after the idle timeout, but keeps one whose desktop is connected', async () => {
    await call('POST', '/api/proxy/start', 'idle-user');
    await layout.connectBridge('busy-user');
    await waitFor(async () => (await call('GET', '/api/proxy/status', 'idle-user')).body.status === 'not-found', 5000, 'the idle proxy to be culled');
    const busy = await call('GET', '/api/proxy/status', 'busy-user');
    expect(busy.body).toMatchObject({ status: 'running', desktop: { connected: true } });
  });
});
