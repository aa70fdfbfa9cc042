/**
 * Connections to the desktop's LLM server: a burst of parallel requests is served over kept-alive
 * connections, and the next burst reuses them instead of opening new ones.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startBridge, type Bridge } from '../src';
import { startFakeRelay, type FakeRelay } from './fake-relay';

describe('the bridge\'s connections to the local server', () => {
  let server: http.Server;
  let connections = 0;
  let relay: FakeRelay;
  let bridge: Bridge | undefined;

  beforeAll(async () => {
    server = http.createServer((_req, res) => {
      // Answer a little later, so that the whole burst is in flight at once.
      setTimeout(() => res.end('{"ok":true}'), 20);
    });
    server.on('connection', () => (connections += 1));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    relay = await startFakeRelay();
  });
  afterAll(async () => {
    await bridge?.close();
    await relay.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('keeps them open between bursts of 32 parallel requests', async () => {
    const target = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    // No target probe: its connections of its own would count here.
    bridge = startBridge({ server: relay.url, token: 'tok-pool', target, backoff: { stepsMs: [30], jitter: 0 }, probeIntervalMs: 0 });
    const peer = await relay.nextPeer();
    await bridge.waitConnected();
    const burst = async (round: number) => {
      const ids = Array.from({ length: 32 }, (_, i) => `r${round}-${i}`);
      for (const id of ids) peer.send({ type: 'http_request', id, method: 'GET', path: '/api/tags', headers: {}, end: true });
      await Promise.all(ids.map((id) => peer.waitFor((m) => m.type === 'end' && m.id === id, 10_000)));
    };
    await burst(1);
    const afterFirst = connections;
    expect(afterFirst).toBeGreaterThan(1); // the burst did run in parallel
    expect(afterFirst).toBeLessThanOrEqual(32);
    for (let round = 2; round <= 4; round += 1) await burst(round);
    expect(connections).toBe(afterFirst);
  });
});
