/**
 * Anonymous load on the public edge must not reach the Docker engine: with 50 users' proxies
 * running, a thousand each of /health, /metrics scrapes and proxy discovery calls (right and wrong
 * secrets) make no engine request at all. The whole relay talks to the engine through a counting
 * relay on a unix socket (DOCKER_HOST), so the test sees every request it makes. The relay's own
 * background work (health checks, sweeps, audit pulls, idle culling) is set far apart, so any
 * request in the window is one the callers caused.
 */
import { containerName, userHash } from '../../api-backend/src/proxy/naming';
import { startLayout, type Layout } from '../helpers/layout';
import { countingEngine, type CountingEngine } from './counting-engine';
import { describeDocker } from './require-docker';
import { docker, removeOwners, TEST_SCOPE } from './support';

const PROXIES = 50;
const CALLS = 1000;
const RARELY = '600000';

jest.setTimeout(300_000);

/** Runs `count` calls of `call` with a few at a time. */
async function pool<T>(count: number, concurrency: number, call: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array<T>(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        results[i] = await call(i);
      }
    }),
  );
  return results;
}

describeDocker('anonymous load on the public edge with the docker driver', () => {
  const users = Array.from({ length: PROXIES }, (_, i) => `load-${i}-${TEST_SCOPE}`);
  const owners = users.map(userHash);
  const secrets = new Map<string, string>();
  const previousDockerHost = process.env.DOCKER_HOST;
  let engine: CountingEngine;
  let layout: Layout;

  beforeAll(async () => {
    engine = await countingEngine();
    // The relay's dockerode reads DOCKER_HOST when the driver is made, just below.
    process.env.DOCKER_HOST = engine.dockerHost;
    layout = await startLayout({
      driver: 'docker',
      env: {
        PROXY_SCOPE: TEST_SCOPE,
        PROXY_MEMORY_MB: '64',
        HEALTH_CHECK_INTERVAL_MS: RARELY,
        PROXY_SWEEP_INTERVAL_MS: RARELY,
        AUDIT_PULL_INTERVAL_MS: RARELY,
        PROXY_IDLE_TIMEOUT_MS: RARELY,
        PROXY_CLEANUP_CRON: '0 0 1 1 *',
      },
    });
    await pool(PROXIES, 4, async (i) => {
      const res = await fetch(`${layout.relay.url}/api/proxy/start`, { method: 'POST', headers: { authorization: `Bearer ${layout.token(users[i])}` } });
      if (res.status !== 201) throw new Error(`starting ${users[i]}'s proxy answered ${res.status}: ${await res.text()}`);
    });
    // Each proxy's secret as its container holds it (read past the counting socket).
    for (const owner of owners) {
      const info = await docker.getContainer(containerName(owner)).inspect();
      secrets.set(owner, info.Config.Env.find((entry) => entry.startsWith('PROXY_SECRET='))!.slice('PROXY_SECRET='.length));
    }
  }, 300_000);

  afterAll(async () => {
    await layout?.close();
    if (previousDockerHost === undefined) delete process.env.DOCKER_HOST;
    else process.env.DOCKER_HOST = previousDockerHost;
    await engine?.close();
    await removeOwners(owners);
  }, 300_000);

  it('answers 1,000 /health, 1,000 /metrics and 1,000 discovery calls without one engine request', async () => {
    const scrape = async () => {
      const res = await fetch(`${layout.relay.metricsUrl}/metrics`);
      return { status: res.status, text: await res.text() };
    };
    // The relay does talk to the engine through the counting socket: it made the containers there.
    expect(engine.requestsSince(0).filter((line) => /^POST \/(v[\d.]+\/)?containers\/create/.test(line))).toHaveLength(PROXIES);
    // The gauge knows all the proxies before the window opens.
    expect((await scrape()).text).toMatch(new RegExp(`^ctll_proxies ${PROXIES}$`, 'm'));
    const mark = engine.mark();

    const health = await pool(CALLS, 8, async () => {
      const res = await fetch(`${layout.relay.url}/health`);
      return `${res.status} ${await res.text()}`;
    });
    expect(new Set(health)).toEqual(new Set(['200 {"status":"ok"}']));

    const scrapes = await pool(CALLS, 8, scrape);
    expect(scrapes.every((s) => s.status === 200 && new RegExp(`^ctll_proxies ${PROXIES}$`, 'm').test(s.text))).toBe(true);

    // Right secrets by owner hash (as proxies ask) and by user id; wrong ones: made up, and another proxy's.
    const discover = await pool(CALLS, 8, async (i) => {
      const n = i % PROXIES;
      const owner = owners[n];
      const kind = (['own', 'own-by-id', 'made-up', 'crossed'] as const)[i % 4];
      const target = kind === 'own-by-id' ? encodeURIComponent(users[n]) : owner;
      const secret =
        kind === 'made-up' ? 'f'.repeat(64) : kind === 'crossed' ? secrets.get(owners[(n + 1) % PROXIES])! : secrets.get(owner)!;
      const res = await fetch(`${layout.relay.url}/api/zrok/discover/${target}`, { headers: { 'x-ctll-proxy-secret': secret } });
      return { kind, status: res.status, body: await res.text() };
    });
    for (const call of discover) {
      if (call.kind === 'own' || call.kind === 'own-by-id') expect(call).toEqual({ kind: call.kind, status: 200, body: '{"tunnels":[]}' });
      else expect(call.status).toBe(401);
    }

    expect(engine.requestsSince(mark)).toEqual([]);
  });
});
