/**
 * The bridge stays inside its `--target` base path: a relayed path that climbs above it is
 * refused with `bad_path` (the relay answers 400) and never reaches the local server, however it
 * is spelled; a path inside it is joined onto the base as it came.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ErrorMessage, HttpResponseMessage } from '@ctll/protocol';
import { startBridge, type Bridge } from '../src';
import { startFakeRelay, type FakeRelay, type Peer } from './fake-relay';

describe('a bridge with --target http://127.0.0.1:PORT/v1', () => {
  let server: http.Server;
  const requested: string[] = [];
  let relay: FakeRelay;
  let bridge: Bridge;
  let peer: Peer;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      requested.push(req.url ?? '');
      res.end('{"ok":true}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    relay = await startFakeRelay();
    const target = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
    // No target probe: this test counts every request the local server gets.
    bridge = startBridge({ server: relay.url, token: 'tok-base', target, backoff: { stepsMs: [30], jitter: 0 }, probeIntervalMs: 0 });
    peer = await relay.nextPeer();
    await bridge.waitConnected();
  });
  afterAll(async () => {
    await bridge?.close();
    await relay.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it.each(['/..', '/../api/tags', '/%2e%2e/api/tags', '/%2E./api/tags', '/x/%2F..%2F..%2Fapi/tags', '/x/..%5C..%5Capi/tags', '/x\\..\\..\\api/tags', '/%252e%252e/api/tags'])(
    'refuses %s with bad_path and never asks the local server',
    async (path) => {
      const id = `bad-${requested.length}-${Math.random().toString(36).slice(2, 8)}`;
      const before = requested.length;
      peer.send({ type: 'http_request', id, method: 'GET', path, headers: {}, end: true });
      const error = (await peer.waitFor((m) => m.type === 'error' && m.id === id)) as ErrorMessage;
      expect(error.code).toBe('bad_path');
      expect(requested.length).toBe(before);
    },
  );

  it('serves a path inside the base path, joined onto it', async () => {
    peer.send({ type: 'http_request', id: 'good-1', method: 'GET', path: '/models?x=1', headers: {}, end: true });
    const head = (await peer.waitFor((m) => m.type === 'http_response' && m.id === 'good-1')) as HttpResponseMessage;
    expect(head.status).toBe(200);
    expect(requested.at(-1)).toBe('/v1/models?x=1');
  });
});
