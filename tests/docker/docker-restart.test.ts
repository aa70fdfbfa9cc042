/**
 * What an operator's bad day looks like with PROXY_DRIVER=docker: api-backend killed with SIGKILL
 * and started again adopts the proxies it finds (no orphans, no duplicates), and a proxy container
 * killed under a live stream ends that stream with an error instead of a hang, after which the
 * next request provisions again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { containerName, userHash } from '../../api-backend/src/proxy/naming';
import { loadOrCreateDevKeys, signDevToken } from '../../api-backend/src/auth/dev-keys';
import { startLayout, waitFor, type Layout } from '../helpers/layout';
import { describeDocker } from './require-docker';
import { docker, leftovers, removeOwners, TEST_SCOPE } from './support';

jest.setTimeout(120_000);

const MAIN = path.resolve(__dirname, '../../api-backend/dist/main.js');

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

describeDocker('api-backend killed with SIGKILL and restarted (docker driver)', () => {
  const users = ['kim', 'lee'].map((name) => `${name}-${TEST_SCOPE}`);
  const owners = users.map(userHash);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-restart-'));
  let port: number;
  let child: ChildProcess | undefined;

  const start = async () => {
    child = spawn(process.execPath, [MAIN], {
      env: { PATH: process.env.PATH, NODE_ENV: 'test', HOST: '127.0.0.1', PORT: String(port), DATA_DIR: dataDir, LOG_LEVEL: 'warn', PROXY_DRIVER: 'docker', PROXY_SCOPE: TEST_SCOPE, PROXY_MEMORY_MB: '128', METRICS_PORT: '0' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/health`).catch(() => undefined))?.ok === true, 30_000, 'api-backend to answer');
  };
  const token = (userId: string) => signDevToken(loadOrCreateDevKeys(path.join(dataDir, 'dev-auth')), { sub: userId, issuer: 'urn:ctll:dev', audience: 'ctll-relay' });
  const call = async (method: 'GET' | 'POST', route: string, userId: string) => {
    const res = await fetch(`http://127.0.0.1:${port}${route}`, { method, headers: { authorization: `Bearer ${token(userId)}` } });
    return (await res.json()) as { status: string; created?: boolean };
  };

  beforeAll(async () => {
    port = await freePort();
  });
  afterAll(async () => {
    child?.kill('SIGKILL');
    await removeOwners(owners);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  /** Whether the relay takes the secret the owner's container was started with (its zrok discovery call). */
  const discoverAccepted = async (ownerHash: string) => {
    const env = (await docker.getContainer(containerName(ownerHash)).inspect()).Config.Env;
    const secret = env.find((entry) => entry.startsWith('PROXY_SECRET='))!.slice('PROXY_SECRET='.length);
    return (await fetch(`http://127.0.0.1:${port}/api/zrok/discover/${ownerHash}`, { headers: { 'x-ctll-proxy-secret': secret } })).status === 200;
  };

  it('adopts the running proxies and leaves no orphan', async () => {
    await start();
    for (const user of users) expect(await call('POST', '/api/proxy/start', user)).toMatchObject({ status: 'running', created: true });
    const before = await Promise.all(owners.map(async (h) => (await docker.getContainer(containerName(h)).inspect()).Id));

    child!.kill('SIGKILL');
    await new Promise((resolve) => child!.once('exit', resolve));
    // Nothing stops containers when api-backend dies: they are still there, still running.
    for (const h of owners) expect((await docker.getContainer(containerName(h)).inspect()).State.Running).toBe(true);

    await start();
    for (const user of users) {
      expect(await call('GET', '/api/proxy/status', user)).toMatchObject({ status: 'running' });
      // A start after the restart reuses the adopted container rather than making another.
      expect(await call('POST', '/api/proxy/start', user)).toMatchObject({ status: 'running', created: false });
    }
    const after = await Promise.all(owners.map(async (h) => (await docker.getContainer(containerName(h)).inspect()).Id));
    expect(after).toEqual(before);
    // The new process derives the same proxy secrets (key in DATA_DIR): adopted proxies still prove themselves.
    for (const h of owners) expect(await discoverAccepted(h)).toBe(true);
    const left = await leftovers(owners);
    expect(left.containers).toHaveLength(2);
    expect(left.networks).toHaveLength(2);

    for (const user of users) expect(await call('POST', '/api/proxy/stop', user)).toMatchObject({ status: 'stopped' });
    expect(await leftovers(owners)).toEqual({ containers: [], networks: [] });
  });
});

describeDocker('a proxy container killed under a live stream (docker driver)', () => {
  let layout: Layout;
  const user = `mo-${TEST_SCOPE}`;

  beforeAll(async () => {
    layout = await startLayout({ driver: 'docker', llm: { tokenDelayMs: 50 } });
    await layout.connectBridge(user);
  });
  afterAll(async () => {
    await layout?.close();
    await removeOwners([userHash(user)]);
  });

  it('ends the stream with an error, not a hang, and the next request provisions again', async () => {
    const res = await layout.fetchAs(user, '/api/chat', { method: 'POST', body: JSON.stringify({ model: 'm', messages: [], options: { num_predict: 400 } }) });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    await reader.read();
    await docker.getContainer(containerName(userHash(user))).kill();
    const drain = async () => {
      for (;;) if ((await reader.read()).done) return 'ended cleanly';
    };
    await expect(drain()).rejects.toThrow();
    // The bridge reconnects; its upgrade makes a new container, and requests flow again.
    await waitFor(async () => (await layout.fetchAs(user, '/api/tags')).status === 200, 60_000, 'a new proxy to serve the user');
  });
});

describeDocker('idle culling (docker driver)', () => {
  let layout: Layout;
  const idle = `ida-${TEST_SCOPE}`;
  const busy = `bo-${TEST_SCOPE}`;

  beforeAll(async () => {
    layout = await startLayout({ driver: 'docker', env: { PROXY_IDLE_TIMEOUT_MS: '500', PROXY_CLEANUP_CRON: '* * * * * *' } });
  });
  afterAll(async () => {
    await layout?.close();
    await removeOwners([idle, busy].map(userHash));
  });

  it('removes an idle proxy’s container and network, and keeps one whose desktop is connected', async () => {
    const res = await fetch(`${layout.relay.url}/api/proxy/start`, { method: 'POST', headers: { authorization: `Bearer ${layout.token(idle)}` } });
    expect(res.status).toBe(201);
    await layout.connectBridge(busy);
    // The cull removes the container, then its network: wait for both, the network goes a moment later.
    await waitFor(async () => {
      const left = await leftovers([userHash(idle)]);
      return left.containers.length === 0 && left.networks.length === 0;
    }, 20_000, 'the idle proxy’s container and network to be culled').catch(async (error: Error) => {
      throw new Error(`${error.message}: ${JSON.stringify(await leftovers([userHash(idle)]))}`);
    });
    expect((await docker.getContainer(containerName(userHash(busy))).inspect()).State.Running).toBe(true);
    expect((await layout.fetchAs(busy, '/api/tags')).status).toBe(200);
  });
});
