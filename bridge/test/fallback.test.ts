/**
 * When the bridge switches from a WebSocket to long-polling: the rule itself (fallback.ts), then
 * the bridge following it against real sockets that fail the ways networks do.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import {
  HandshakeTimeoutError,
  startBridge,
  suggestsBlockedWebSocket,
  UpgradeRejectedError,
  type Bridge,
  type BridgeOptions,
  type BridgeStatus,
  type Disconnect,
} from '../src';
import { startFakeRelay } from './fake-relay';
import { deadPort, eventually } from './helpers';

const failed = (error: Error, extra: Partial<Disconnect> = {}): Disconnect => ({ reason: error.message, wasOpen: false, byUs: false, error, ...extra });
const errno = (code: string): Error => Object.assign(new Error(code), { code });

describe('the fallback rule', () => {
  it.each([
    ['a proxy’s block page (403 without the relay’s JSON)', new UpgradeRejectedError(403, 'Forbidden')],
    ['a 200 from something that dropped the Upgrade header', new UpgradeRejectedError(200, 'OK')],
    ['the relay’s own 404: it saw a plain GET', new UpgradeRejectedError(404, 'Not Found', 'not_found', 'no route GET /ws/tunnel')],
    ['a proxy’s 500 error page', new UpgradeRejectedError(500, 'Internal Server Error')],
    ['a handshake held until it timed out, after connecting', new HandshakeTimeoutError(10_000, true)],
    ['a connection reset during the handshake', errno('ECONNRESET')],
  ])('falls back for %s', (_what, error) => {
    expect(suggestsBlockedWebSocket(failed(error))).toBe(true);
  });

  it.each([
    ['the relay refusing the token', new UpgradeRejectedError(401, 'Unauthorized', 'unauthorized', 'jwt expired')],
    ['the relay refusing the user', new UpgradeRejectedError(403, 'Forbidden', 'forbidden', 'not yours')],
    ['the relay rate-limiting', new UpgradeRejectedError(429, 'Too Many Requests', 'rate_limited', 'slow down')],
    ['the relay not speaking this bridge’s protocol version', new UpgradeRejectedError(400, 'Bad Request', 'protocol_version', 'upgrade ctll-bridge')],
    ['the relay in trouble', new UpgradeRejectedError(503, 'Service Unavailable', 'unavailable', 'Docker is not reachable')],
    ['a gateway that cannot reach the relay', new UpgradeRejectedError(502, 'Bad Gateway')],
    ['a relay that is down (connection refused)', errno('ECONNREFUSED')],
    ['a name that does not resolve', errno('ENOTFOUND')],
    ['a TLS failure', errno('CERT_HAS_EXPIRED')],
    ['a timeout before any connection was made', new HandshakeTimeoutError(10_000, false)],
  ])('stays on the WebSocket for %s', (_what, error) => {
    expect(suggestsBlockedWebSocket(failed(error))).toBe(false);
  });

  it('never falls back after a WebSocket had opened, or when the bridge closed it', () => {
    expect(suggestsBlockedWebSocket(failed(errno('ECONNRESET'), { wasOpen: true }))).toBe(false);
    expect(suggestsBlockedWebSocket(failed(errno('ECONNRESET'), { byUs: true }))).toBe(false);
  });
});

describe('the bridge falling back', () => {
  const bridges: Bridge[] = [];
  const servers: Array<{ close(): unknown }> = [];

  afterEach(async () => {
    await Promise.all(bridges.splice(0).map((bridge) => bridge.close()));
    for (const server of servers.splice(0)) server.close();
  });

  function watch(server: string, options: Partial<BridgeOptions> = {}) {
    const notices: string[] = [];
    const statuses: BridgeStatus[] = [];
    const bridge = startBridge({
      server,
      token: 'tok-123',
      backoff: { stepsMs: [20], jitter: 0 },
      handshakeTimeoutMs: 300,
      onNotice: (message) => notices.push(message),
      onStatus: (status) => statuses.push(status),
      ...options,
    });
    bridges.push(bridge);
    const attempts = () => statuses.filter((status) => status.state === 'retrying').length;
    return { bridge, notices, attempts };
  }

  /** A TCP server with a behaviour per connection; its URL. */
  async function tcpServer(onConnection: (socket: net.Socket) => void): Promise<string> {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
      onConnection(socket);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push({ close: () => (sockets.forEach((socket) => socket.destroy()), server.close()) });
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('switches to polling when a proxy answers the upgrade with a block page', async () => {
    const proxy = await startFakeRelay({ status: 403, body: '<html>WebSockets are not allowed here</html>' });
    servers.push(proxy);
    const { bridge, notices } = watch(proxy.url);
    await eventually(() => bridge.transport === 'poll');
    expect(proxy.upgrades).toHaveLength(1);
    expect(notices[0]).toBe(
      'WebSockets seem to be blocked on this network (the relay refused the tunnel: 403 Forbidden): ' +
        'using HTTP long-polling, and trying WebSocket again every 5 min',
    );
  });

  it('switches to polling when the handshake is swallowed after connecting', async () => {
    const url = await tcpServer(() => undefined);
    const { bridge } = watch(url);
    await eventually(() => bridge.transport === 'poll');
  });

  it('switches to polling when the connection is reset during the handshake', async () => {
    const url = await tcpServer((socket) => socket.once('data', () => socket.resetAndDestroy()));
    const { bridge } = watch(url);
    await eventually(() => bridge.transport === 'poll');
  });

  it('stays on the WebSocket when the relay is down, refuses the token, or fallback is off', async () => {
    const down = watch(`http://127.0.0.1:${await deadPort()}`);
    const refusing = await startFakeRelay({ status: 401, body: JSON.stringify({ error: { code: 'unauthorized', message: 'jwt expired' } }) });
    servers.push(refusing);
    const refused = watch(refusing.url);
    const proxy = await startFakeRelay({ status: 403, body: '<html>no</html>' });
    servers.push(proxy);
    const off = watch(proxy.url, { fallback: false });
    await eventually(() => [down, refused, off].every((watched) => watched.attempts() >= 3));
    for (const watched of [down, refused, off]) {
      expect(watched.bridge.transport).toBe('ws');
      expect(watched.notices).toEqual([]);
    }
  });
});
