/**
 * A shutdown that goes wrong halfway must still write the audit. The Docker engine stops answering
 * api-backend right before its SIGTERM (api-backend reaches it through a TCP hop this test cuts):
 * listing the proxies at shutdown fails, and the audit records still waiting (proxy starts, kept
 * back by a long AUDIT_FLUSH_INTERVAL_MS so only the final flush can write them) reach PostgreSQL
 * all the same. The failed step is logged and makes the exit code 1.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { userHash } from '../../api-backend/src/proxy/naming';
import { freePort, startRelayProcess, type RelayProcess } from '../helpers/relay-process';
import { createTestDatabase, describeWithPostgres, type TestDatabase } from '../helpers/postgres';
import { describeDocker, PROXY_IMAGE } from './require-docker';
import { removeOwners, TEST_SCOPE } from './support';

jest.setTimeout(240_000);

const DOCKER_SOCKET = '/var/run/docker.sock';

/** 127.0.0.1:<port> → the engine's socket, until `cut()`. */
async function engineHop(): Promise<{ port: number; cut(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(DOCKER_SOCKET);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    async cut() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describeDocker('a shutdown step that fails (docker driver)', () => {
  describeWithPostgres('with the audit on PostgreSQL', () => {
    const users = ['fay', 'gus'].map((name) => `${name}-${TEST_SCOPE}`);
    const owners = users.map(userHash);
    let testDb: TestDatabase;
    let dataDir: string;
    let relay: RelayProcess | undefined;

    beforeAll(async () => {
      testDb = await createTestDatabase();
      dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-shutdown-failure-'));
    });
    afterAll(async () => {
      await relay?.kill();
      await removeOwners(owners);
      await testDb?.drop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    });

    it('does not skip the audit flush when the engine is gone at shutdown', async () => {
      const hop = await engineHop();
      relay = await startRelayProcess(
        {
          PROXY_DRIVER: 'docker',
          PROXY_SCOPE: TEST_SCOPE,
          PROXY_IMAGE,
          PROXY_MEMORY_MB: '128',
          DOCKER_HOST: `tcp://127.0.0.1:${hop.port}`,
          DATABASE_URL: testDb.url,
          AUDIT_FLUSH_INTERVAL_MS: '600000',
        },
        dataDir,
        await freePort(),
      );
      for (const user of users) {
        const res = await fetch(`${relay.url}/api/proxy/start`, { method: 'POST', headers: { authorization: `Bearer ${relay.token(user)}` } });
        expect(await res.json()).toMatchObject({ status: 'running', created: true });
      }
      const started = () => testDb.query<{ owner_hash: string }>('SELECT owner_hash FROM proxy_sessions WHERE owner_hash = ANY($1) ORDER BY owner_hash', [owners]);
      // Nothing written yet: the flush interval is far away, so only the shutdown's flush can write them.
      expect(await started()).toEqual([]);

      await hop.cut();
      relay.child.kill('SIGTERM');
      expect(await relay.exited).toBe(1);
      expect(relay.output()).toMatch(/"step":"proxies"/);
      expect(relay.output()).toMatch(/shutdown incomplete: proxies failed/);
      expect((await started()).map((row) => row.owner_hash)).toEqual([...owners].sort());
    });
  });
});
