/**
 * Tunnels api-backend hands over as sockets (http/handed-tunnels.ts), named after how a handoff
 * goes wrong. The parent's IPC channel is played by an emitter that records what the proxy
 * reports; the sockets are real TCP connections on 127.0.0.1, the desktop's end held here.
 */
import { EventEmitter } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { CatalogueError, type HandOffReport } from '@ctll/protocol';
import { HandedTunnels, type AcceptDesktop, type TunnelWatch } from '../src/http/handed-tunnels';
import { createLogger } from '../src/logger';
import { waitUntil } from './helpers/wait';

class Parent extends EventEmitter {
  readonly reports: HandOffReport[] = [];
  send(message: HandOffReport): void {
    this.reports.push(message);
  }
}

interface Accepted {
  req: http.IncomingMessage;
  socket: Duplex;
  head: Buffer;
  watch?: TunnelWatch;
}

let server: net.Server;
const opened: net.Socket[] = [];

/** A connected pair: the desktop's end, and the end api-backend would hand over. */
async function connection(): Promise<{ desktop: net.Socket; handed: net.Socket }> {
  const handed = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const desktop = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  opened.push(desktop);
  const pair = { desktop, handed: await handed };
  opened.push(pair.handed);
  return pair;
}

function setUp(): { parent: Parent; accepted: Accepted[] } {
  const parent = new Parent();
  const accepted: Accepted[] = [];
  const accept: AcceptDesktop = (req, socket, head, watch) => accepted.push({ req, socket, head, watch });
  new HandedTunnels(parent, createLogger('error', 'test', () => undefined)).serve(accept);
  return { parent, accepted };
}

const handOff = (ticket: number, head = '') => ({ type: 'tunnel', ticket, headers: { upgrade: 'websocket', 'x-ctll-proxy-secret': 's' }, head });

beforeEach(async () => {
  server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});

afterEach(async () => {
  for (const socket of opened.splice(0)) socket.destroy();
  await new Promise((resolve) => server.close(resolve));
});

it('ignores what is no handoff on the channel (another message, a malformed one): nothing is taken or reported', () => {
  const { parent, accepted } = setUp();
  parent.emit('message', { type: 'listening', port: 1 });
  parent.emit('message', { type: 'tunnel', ticket: 'one', headers: {}, head: '' });
  parent.emit('message', 'tunnel');
  expect(accepted).toEqual([]);
  expect(parent.reports).toEqual([]);
});

it('reports a handoff that arrived without its socket as closed at once, so api-backend does not wait for it', () => {
  const { parent, accepted } = setUp();
  parent.emit('message', handOff(3));
  expect(accepted).toEqual([]);
  expect(parent.reports).toEqual([{ type: 'tunnel-closed', ticket: 3 }]);
});

it("runs a handed socket through the upgrade path as the request api-backend parsed, with the bytes it had read past the head", async () => {
  const { parent, accepted } = setUp();
  const { handed } = await connection();
  parent.emit('message', handOff(1, Buffer.from('early').toString('base64')), handed);
  expect(accepted).toHaveLength(1);
  const [{ req, socket, head }] = accepted;
  expect(socket).toBe(handed);
  expect([req.method, req.url, req.headers.upgrade, req.headers['x-ctll-proxy-secret']]).toEqual(['GET', '/ws/tunnel', 'websocket', 's']);
  expect(head.toString()).toBe('early');
});

it('tells api-backend a tunnel was accepted, then that it closed when the desktop went away', async () => {
  const { parent, accepted } = setUp();
  const { desktop, handed } = await connection();
  parent.emit('message', handOff(7), handed);
  accepted[0].watch!.accepted();
  expect(parent.reports).toEqual([{ type: 'tunnel-accepted', ticket: 7 }]);
  desktop.destroy();
  await waitUntil(() => parent.reports.length === 2, 'the close to be reported');
  expect(parent.reports[1]).toEqual({ type: 'tunnel-closed', ticket: 7 });
});

it("reports a refusal with the catalogue's status and code (the desktop got the refusal from the proxy itself)", async () => {
  const { parent, accepted } = setUp();
  const { handed } = await connection();
  parent.emit('message', handOff(2), handed);
  accepted[0].watch!.refused(new CatalogueError('too_many_links', 'at most 1 WebSocket tunnel'));
  expect(parent.reports).toEqual([{ type: 'tunnel-refused', ticket: 2, status: 429, code: 'too_many_links' }]);
});

it("cuts a tunnel api-backend asks to close (its drain), and the desktop sees its connection end", async () => {
  const { parent, accepted } = setUp();
  const { desktop, handed } = await connection();
  parent.emit('message', handOff(5), handed);
  accepted[0].watch!.accepted();
  const ended = new Promise((resolve) => desktop.once('close', resolve));
  parent.emit('message', { type: 'tunnel-close', ticket: 5 });
  await ended;
  await waitUntil(() => parent.reports.some((report) => report.type === 'tunnel-closed'), 'the close to be reported');
  // A close for a ticket it does not hold (already gone) changes nothing.
  parent.emit('message', { type: 'tunnel-close', ticket: 5 });
  expect(parent.reports).toEqual([
    { type: 'tunnel-accepted', ticket: 5 },
    { type: 'tunnel-closed', ticket: 5 },
  ]);
});
