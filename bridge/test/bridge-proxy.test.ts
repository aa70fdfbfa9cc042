/**
 * The bridge against the real streaming-proxy (bundled from source, run as a child process) and a
 * real local HTTP server: what a web client sees through api-backend's frame relay.
 */
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { startBridge, type Bridge, type BridgeStatus } from '../src';
import {
  bundle,
  deadPort,
  eventually,
  readBody,
  relay,
  SECRET_HEADERS,
  sha256,
  startProxy,
  startTarget,
  type RunningProxy,
  type Target,
} from './helpers';

// A token the relay never sees verified here (the proxy trusts api-backend); its `sub` names the user.
const TOKEN = `e30.${Buffer.from(JSON.stringify({ sub: 'alice' })).toString('base64url')}.sig`;

let proxyFile: string;
let bundleDir: string;
let proxy: RunningProxy;
let target: Target;
let bridge: Bridge;
const statuses: BridgeStatus[] = [];

function bridgeFor(proxyUrl: string, targetUrl: string, onStatus?: (status: BridgeStatus) => void): Bridge {
  return startBridge({
    server: proxyUrl,
    token: TOKEN,
    target: targetUrl,
    upgradeHeaders: SECRET_HEADERS,
    backoff: { stepsMs: [50, 100, 200], jitter: 0 },
    onStatus,
  });
}

beforeAll(async () => {
  ({ file: proxyFile, dir: bundleDir } = await bundle('streaming-proxy/src/main.ts', 'streaming-proxy.js'));
  proxy = await startProxy(proxyFile);
  target = await startTarget();
  bridge = bridgeFor(proxy.url, target.url, (status) => statuses.push(status));
  await bridge.waitConnected(10_000);
});

afterAll(async () => {
  await bridge?.close();
  await proxy?.stop();
  await target?.close();
  fs.rmSync(bundleDir, { recursive: true, force: true });
});

describe('bridge behind the streaming-proxy', () => {
  it('introduces itself to the relay and reports the user from the token', async () => {
    const status = await proxy.status();
    expect(status.desktops).toHaveLength(1);
    expect(status.desktops[0].client).toMatch(/^ctll-bridge\/\d+\.\d+\.\d+ \([a-z0-9]+; node \d+\.\d+\.\d+\)$/);
    expect(statuses.at(-1)).toMatchObject({ state: 'connected', user: 'alice', served: 0 });
  });

  it('streams each chunk to the web client before the target has finished', async () => {
    const { response } = relay(proxy.edge, 'GET', '/stream/s1');
    const res = await response;
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-ndjson');
    const arrivals: number[] = [];
    const chunks: string[] = [];
    for await (const chunk of res) {
      arrivals.push(Date.now());
      chunks.push(String(chunk));
    }
    expect(chunks.join('').trim().split('\n')).toHaveLength(5);
    // The first token reached the client while the target was still producing the rest.
    expect(arrivals[0]).toBeLessThan(target.finishedAt.get('s1')!);
    expect(arrivals.length).toBeGreaterThanOrEqual(3);
  });

  it('carries a POST body both ways byte for byte', async () => {
    const body = randomBytes(3 * 1024 * 1024 + 17);
    const { response } = relay(proxy.edge, 'POST', '/echo', body);
    const res = await response;
    expect(res.statusCode).toBe(200);
    const echoed = await readBody(res);
    expect(echoed.byteLength).toBe(body.byteLength);
    expect(sha256(echoed)).toBe(sha256(body));
  });

  it('aborts the local request when the web client goes away', async () => {
    const closed = target.closed('c1');
    const { request, response } = relay(proxy.edge, 'GET', '/hang/c1');
    const res = await response;
    await new Promise((resolve) => res.once('data', resolve));
    expect(bridge.stats.active).toBe(1);
    request.destroy();
    await closed; // the target saw its connection close: the model would stop here
    await eventually(() => bridge.stats.active === 0);
  });

  it('answers many parallel requests over the one tunnel', async () => {
    const count = 40;
    const bodies = Array.from({ length: count }, (_, i) => randomBytes(1024 * (i + 1)));
    const results = await Promise.all(
      bodies.map(async (body, i) => {
        const echo = relay(proxy.edge, 'POST', '/echo', body);
        const json = relay(proxy.edge, 'GET', `/json/${i}`);
        return { echoed: await readBody(await echo.response), json: JSON.parse(String(await readBody(await json.response))) };
      }),
    );
    results.forEach(({ echoed, json }, i) => {
      expect(sha256(echoed)).toBe(sha256(bodies[i]));
      expect(json).toEqual({ n: i, method: 'GET' });
    });
    expect(bridge.stats.served).toBeGreaterThanOrEqual(2 * count);
  });

  it('answers 502 target_unreachable when the local server is down', async () => {
    const other = await startProxy(proxyFile);
    const orphan = bridgeFor(other.url, `http://127.0.0.1:${await deadPort()}`);
    try {
      await orphan.waitConnected(10_000);
      const res = await relay(other.edge, 'POST', '/api/chat', Buffer.from('{"model":"x"}')).response;
      expect(res.statusCode).toBe(502);
      const body = JSON.parse(String(await readBody(res)));
      expect(body.error.code).toBe('target_unreachable');
      expect(body.error.message).toMatch(/could not reach http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
    } finally {
      await orphan.close();
      await other.stop();
    }
  });

  it('reconnects after the relay restarts, and aborts what was in flight', async () => {
    const other = await startProxy(proxyFile);
    const seen: BridgeStatus[] = [];
    const restarting = bridgeFor(other.url, target.url, (status) => seen.push(status));
    try {
      await restarting.waitConnected(10_000);
      const closed = target.closed('r1');
      const res = await relay(other.edge, 'GET', '/hang/r1').response;
      res.on('error', () => undefined);
      await other.stop();
      await closed; // the tunnel went away, so the local request was aborted
      await eventually(() => seen.some((status) => status.state === 'retrying'));
      const again = await startProxy(proxyFile, other.port);
      try {
        await eventually(() => restarting.connected, 10_000);
        const answer = await relay(again.edge, 'GET', '/json/7').response;
        expect(JSON.parse(String(await readBody(answer)))).toEqual({ n: 7, method: 'GET' });
        expect(seen.find((status) => status.state === 'retrying')?.reason).toMatch(/^relay closed 1006/);
      } finally {
        await restarting.close();
        await again.stop();
      }
    } finally {
      await restarting.close();
      await other.stop();
    }
  });
});
