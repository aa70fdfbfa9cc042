/**
 * A relay restart with PROXY_DRIVER=docker, done properly (SIGTERM, as `docker compose up -d` or a
 * deploy does): users' proxy containers are not removed, the next api-backend adopts them (the
 * same containers, nothing new made), and the audit loses nothing: each proxy keeps its one start
 * row, none is recorded as stopped by the shutdown, and the desktop's tunnel is recorded as the
 * disconnect (1012 "relay restarting") and reconnect it was. Needs the proxy image built from this
 * tree (scripts/docker-build.sh): the 1012 close is the proxy's.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startBridge, type Bridge, type BridgeStatus } from '../../bridge/src';
import { containerName, userHash } from '../../api-backend/src/proxy/naming';
import { startLlmServer, type LlmServer } from '../helpers/llm-server';
import { freePort, startRelayProcess, type RelayProcess } from '../helpers/relay-process';
import { createTestDatabase, describeWithPostgres, type TestDatabase } from '../helpers/postgres';
import { waitFor } from '../helpers/layout';
import { describeDocker, PROXY_IMAGE } from './require-docker';
import { docker, leftovers, removeOwners, TEST_SCOPE } from './support';

jest.setTimeout(240_000);

describeDocker('api-backend stopped with SIGTERM and started again (docker driver)', () => {
  describeWithPostgres('with the audit on PostgreSQL', () => {
    const desktopUser = `dora-${TEST_SCOPE}`;
    const quietUser = `quinn-${TEST_SCOPE}`;
    const users = [desktopUser, quietUser];
    const owners = users.map(userHash);
    let testDb: TestDatabase;
    let llm: LlmServer;
    let dataDir: string;
    let port: number;
    let relay: RelayProcess | undefined;
    let bridge: Bridge | undefined;
    let env: Record<string, string>;
    const statuses: BridgeStatus[] = [];

    beforeAll(async () => {
      testDb = await createTestDatabase();
      llm = await startLlmServer({ tokenDelayMs: 5, tokens: 5 });
      dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-docker-drain-'));
      port = await freePort();
      env = {
        PROXY_DRIVER: 'docker',
        PROXY_SCOPE: TEST_SCOPE,
        PROXY_IMAGE,
        PROXY_MEMORY_MB: '128',
        DATABASE_URL: testDb.url,
        AUDIT_PULL_INTERVAL_MS: '200',
        AUDIT_FLUSH_INTERVAL_MS: '50',
      };
    });
    afterAll(async () => {
      await bridge?.close();
      await relay?.kill();
      await llm?.close();
      await removeOwners(owners);
      await testDb?.drop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    });

    const call = async (method: 'GET' | 'POST', route: string, userId: string) => {
      const res = await fetch(`${relay!.url}${route}`, { method, headers: { authorization: `Bearer ${relay!.token(userId)}` } });
      return (await res.json()) as { status: string; created?: boolean };
    };
    const containerIds = () => Promise.all(owners.map(async (owner) => (await docker.getContainer(containerName(owner)).inspect()).Id));
    const proxyRows = () =>
      testDb.query<{ owner_hash: string; proxy_id: string; stop_reason: string | null }>(
        'SELECT owner_hash, proxy_id, stop_reason FROM proxy_sessions WHERE owner_hash = ANY($1) ORDER BY owner_hash',
        [owners],
      );

    it('leaves the proxies running, adopts them after the restart, and records no stop', async () => {
      relay = await startRelayProcess(env, dataDir, port);
      expect(await call('POST', '/api/proxy/start', quietUser)).toMatchObject({ status: 'running', created: true });
      bridge = startBridge({ server: relay.url, token: relay.token(desktopUser), target: llm.url, transport: 'ws', fallback: false, onStatus: (status) => statuses.push(status) });
      await bridge.waitConnected(60_000);
      const tags = await fetch(`${relay.url}/api/tunnel/${desktopUser}/api/tags`, { headers: { authorization: `Bearer ${relay.token(desktopUser)}` } });
      expect(tags.status).toBe(200);
      const before = await containerIds();
      await waitFor(async () => (await proxyRows()).length === 2, 10_000, 'both proxy starts in the audit');

      relay.child.kill('SIGTERM');
      expect(await relay.exited).toBe(0);
      expect(relay.output()).toMatch(/StreamingProxy left running for the next api-backend to adopt/);
      // The proxy (still running) closed the tunnel with 1012, so the bridge came back without backing off.
      expect(statuses.map((status) => status.reason)).toContain('relay closed 1012 relay restarting');

      // Nothing removed: the same containers, still running, their networks still there.
      expect(await containerIds()).toEqual(before);
      for (const owner of owners) expect((await docker.getContainer(containerName(owner)).inspect()).State.Running).toBe(true);
      const left = await leftovers(owners);
      expect(left.containers).toHaveLength(2);
      expect(left.networks).toHaveLength(2);
      const rowsAtStop = await proxyRows();
      expect(rowsAtStop.map((row) => row.stop_reason)).toEqual([null, null]);
      expect(rowsAtStop.map((row) => row.proxy_id).sort()).toEqual([...before].sort());

      relay = await startRelayProcess(env, dataDir, port);
      for (const user of users) {
        expect(await call('GET', '/api/proxy/status', user)).toMatchObject({ status: 'running' });
        expect(await call('POST', '/api/proxy/start', user)).toMatchObject({ status: 'running', created: false });
      }
      expect(await containerIds()).toEqual(before);

      // The bridge came back by itself, to the very same proxy.
      await waitFor(
        async () => (await fetch(`${relay!.url}/api/tunnel/${desktopUser}/api/tags`, { headers: { authorization: `Bearer ${relay!.token(desktopUser)}` } })).status === 200,
        60_000,
        'the bridge to reconnect through the new api-backend',
      );
      const tunnels = async () =>
        testDb.query<{ proxy_id: string; close_reason: string | null; disconnected_at: Date | null }>(
          'SELECT proxy_id, close_reason, disconnected_at FROM tunnel_sessions WHERE owner_hash = $1 ORDER BY connected_at',
          [userHash(desktopUser)],
        );
      // The first tunnel closed when the old api-backend let go of it; the second is open.
      await waitFor(async () => (await tunnels()).length === 2 && (await tunnels())[0].disconnected_at !== null, 20_000, 'both tunnel sessions in the audit');
      const sessions = await tunnels();
      expect(sessions.map((row) => row.proxy_id)).toEqual([before[0], before[0]]);
      expect(sessions[1].disconnected_at).toBeNull();
      expect(sessions[0].close_reason).toBe('1012 relay restarting');

      // Still one start row per proxy, none stopped: the adopted proxies were never recorded as gone.
      expect(await proxyRows()).toEqual(rowsAtStop);
    });
  });
});
