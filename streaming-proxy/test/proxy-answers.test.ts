/**
 * The proxy's JSON answers (/status, /events, /tunnels/reconnect) are one contract in protocol/:
 * api-backend's ProxyClient parses them with the same schemas the proxy builds them from, so a
 * proxy whose answers drifted (an old image, a bug) is an error naming the field, never a value
 * cast into place that breaks later (idle culling, the audit's byte counts).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { RELAY_INSTANCE_HEADER } from '@ctll/protocol';
import { ProxyClient } from '../../api-backend/src/proxy/proxy-client';
import { connectDesktop, SECRET, startProxy, type TestProxy } from './helpers/proxy';

function endpointOf(url: string) {
  const { hostname, port } = new URL(url);
  return { host: hostname, port: Number(port), secret: SECRET };
}

describe("the proxy's answers as api-backend reads them", () => {
  let proxy: TestProxy;
  const client = new ProxyClient();

  beforeAll(async () => {
    proxy = await startProxy();
  });
  afterAll(async () => {
    client.close();
    await proxy?.close();
  });

  it('reads the status, the journal and the reconnect count of a real proxy with a desktop connected', async () => {
    const desktop = await connectDesktop(proxy, { [RELAY_INSTANCE_HEADER]: 'relay-a' });
    const endpoint = endpointOf(proxy.url);

    const status = await client.status(endpoint);
    expect(status).toMatchObject({ status: 'running', transport: 'ws', zrok: null, activeRequests: 0 });
    expect(status.desktops).toEqual([expect.objectContaining({ transport: 'ws', activeStreams: 0 })]);

    const page = await client.events(endpoint, 0);
    expect(page.events).toEqual([expect.objectContaining({ type: 'tunnel_opened', transport: 'ws', seq: 1 })]);
    expect(page).toMatchObject({ lastSeq: 1, dropped: 0 });

    expect(await client.reconnectTunnels(endpoint, 'relay-a')).toEqual({ closed: 1 });
    expect((await desktop.closed).code).toBe(1012);
  });

  it('closes on a reconnect only the tunnels relayed through the api-backend that asks, not those through another replica', async () => {
    const viaA = await connectDesktop(proxy, { [RELAY_INSTANCE_HEADER]: 'relay-a' });
    const viaB = await connectDesktop(proxy, { [RELAY_INSTANCE_HEADER]: 'relay-b' });
    let bClosed = false;
    void viaB.closed.then(() => (bClosed = true));
    const endpoint = endpointOf(proxy.url);

    expect(await client.reconnectTunnels(endpoint, 'relay-a')).toEqual({ closed: 1 });
    expect(await viaA.closed).toEqual({ code: 1012, reason: 'relay restarting' });
    // The other replica's tunnel is still the same open link: the proxy still lists it and it
    // still answers a ping.
    const status = await client.status(endpoint);
    expect(status.desktops).toHaveLength(1);
    await new Promise<void>((resolve, reject) => {
      viaB.ws.once('pong', () => resolve());
      viaB.ws.ping();
      setTimeout(() => reject(new Error('no pong from the proxy')), 5000);
    });
    expect(bClosed).toBe(false);
    expect(await client.reconnectTunnels(endpoint, 'relay-b')).toEqual({ closed: 1 });
    expect((await viaB.closed).code).toBe(1012);
  });
});

describe('a proxy whose answers drifted', () => {
  let server: http.Server;
  let answer = '';
  const client = new ProxyClient();

  beforeAll(async () => {
    server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(answer));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    client.close();
    await new Promise((resolve) => server.close(resolve));
  });

  const endpoint = () => ({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, secret: SECRET });

  it('is an error naming the missing field of /status, not a status without desktops', async () => {
    answer = JSON.stringify({ status: 'running', startedAt: 'x', transport: null, zrok: null, activeRequests: 0, requests: 0, bytesToDesktop: 0, bytesFromDesktop: 0, lastActivityAt: 'x' });
    await expect(client.status(endpoint())).rejects.toThrow('proxy status answered an unexpected shape: desktops: ');
  });

  it('is an error naming the journal event whose counts are not numbers, not an audit row of NaN bytes', async () => {
    const closed = { seq: 1, type: 'tunnel_closed', at: 'x', link: 'l', transport: 'ws', requests: 1, bytesToDesktop: '12', bytesFromDesktop: 3, reason: 'gone' };
    answer = JSON.stringify({ events: [closed], lastSeq: 1, dropped: 0 });
    await expect(client.events(endpoint(), 0)).rejects.toThrow('proxy events answered an unexpected shape: events.0.bytesToDesktop: ');
  });

  it('is an error when the answer is not JSON at all', async () => {
    answer = '<html>bad gateway</html>';
    await expect(client.status(endpoint())).rejects.toThrow('proxy status answered with something other than JSON');
  });
});
