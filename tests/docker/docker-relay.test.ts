/**
 * The whole relay with PROXY_DRIVER=docker: the HTTP API starts, reports and stops a user's
 * container, a bridge's tunnel lands in that container and a request relays through it (growing
 * windows declared across api-backend's pipe, protocol/src/stream-window.ts), and /health/details
 * reports the engine. (The full end-to-end matrix runs over tests/helpers/layout.ts.)
 */
import { createHash, randomBytes } from 'node:crypto';
import { MAX_STREAM_WINDOW, STREAM_WINDOW_HEADER } from '@ctll/protocol';
import { containerName, userHash } from '../../api-backend/src/proxy/naming';
import { startLayout, type Layout } from '../helpers/layout';
import { openFrameDesktop } from '../helpers/frame-desktop';
import { describeDocker } from './require-docker';
import { docker, leftovers, removeOwners, TEST_SCOPE } from './support';

jest.setTimeout(60_000);

describeDocker('relay with PROXY_DRIVER=docker', () => {
  let layout: Layout;
  const users = ['dana', 'eli', 'fay'].map((name) => `${name}-${TEST_SCOPE}`);
  const owners = users.map(userHash);

  beforeAll(async () => {
    layout = await startLayout({ driver: 'docker', env: { PROXY_SCOPE: TEST_SCOPE, PROXY_MEMORY_MB: '128' } });
  });
  afterAll(async () => {
    await layout?.close();
    await removeOwners(owners);
  });

  const call = async (method: 'GET' | 'POST', route: string, userId: string) => {
    const res = await fetch(`${layout.relay.url}${route}`, { method, headers: { authorization: `Bearer ${layout.token(userId)}` } });
    return { status: res.status, body: (await res.json()) as { status: string; driver?: string; created?: boolean } };
  };

  it('starts, reports and stops the caller’s container through the HTTP API', async () => {
    const [dana] = users;
    const started = await call('POST', '/api/proxy/start', dana);
    expect(started).toMatchObject({ status: 201, body: { status: 'running', driver: 'docker', created: true } });
    const container = await docker.getContainer(containerName(userHash(dana))).inspect();
    expect(container.State.Running).toBe(true);
    expect((await call('GET', '/api/proxy/status', dana)).body).toMatchObject({ status: 'running', driver: 'docker' });
    expect((await call('POST', '/api/proxy/stop', dana)).body).toMatchObject({ status: 'stopped' });
    expect(await leftovers([userHash(dana)])).toEqual({ containers: [], networks: [] });
  });

  it('relays a request through the user’s container to the desktop', async () => {
    const [, eli] = users;
    await layout.connectBridge(eli);
    const res = await layout.fetchAs(eli, '/api/tags');
    expect(res.status).toBe(200);
    expect(await res.json()).toHaveProperty('models');
    expect((await leftovers([userHash(eli)])).containers).toEqual([`/${containerName(userHash(eli))}`]);
  });

  it('carries a desktop’s window declaration to the container and its answer back, and a body both ways arrives intact with growing windows', async () => {
    const [, eli, fay] = users;
    const desktop = await openFrameDesktop(`${layout.relay.url.replace('http', 'ws')}/ws/tunnel`, {
      authorization: `Bearer ${layout.token(fay)}`,
      [STREAM_WINDOW_HEADER]: String(MAX_STREAM_WINDOW),
    });
    expect(desktop.upgradeHeaders[STREAM_WINDOW_HEADER]).toBe(String(MAX_STREAM_WINDOW));
    desktop.ws.close();

    // eli's bridge (connected above) declares growing windows too: an echo of 16 MiB crosses both ways at once.
    const body = randomBytes(16 * 1024 * 1024);
    const res = await layout.fetchAs(eli, '/echo', { method: 'POST', body });
    expect(res.status).toBe(200);
    const echoed = Buffer.from(await res.arrayBuffer());
    expect(echoed.byteLength).toBe(body.byteLength);
    expect(createHash('sha256').update(echoed).digest('hex')).toBe(createHash('sha256').update(body).digest('hex'));
  });

  it('reports the Docker engine in /health/details on the private port, and only "ok" on the public one', async () => {
    const res = await fetch(`${layout.relay.metricsUrl}/health/details`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok', checks: { docker: { ok: true, detail: expect.stringContaining('Docker engine answers') } } });
    const open = await fetch(`${layout.relay.url}/health`);
    expect(open.status).toBe(200);
    expect(await open.json()).toEqual({ status: 'ok' });
  });
});
