/**
 * api-backend's side of a handed tunnel (proxy/tunnel-handoffs.ts), named after how a handoff
 * goes wrong. The child is a real forked process playing the proxy's side of the contract in a
 * few lines (how it behaves is chosen per test); the sockets are real TCP connections.
 */
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { RelayError } from '@ctll/protocol';
import { TunnelHandOffs, type HandOffOutcome, type TunnelEnd } from '../src/proxy/tunnel-handoffs';

/** The proxy's side: `accept` answers accepted and closes on request; `exit` dies on the handoff; `close-first` closes unanswered. */
const CHILD = `
const mode = process.env.MODE;
const held = new Map();
process.on('message', (message, socket) => {
  if (message.type === 'tunnel') {
    if (mode === 'exit') process.exit(3);
    held.set(message.ticket, socket);
    if (mode === 'close-first') { socket.destroy(); process.send({ type: 'tunnel-closed', ticket: message.ticket }); return; }
    process.send({ type: 'tunnel-accepted', ticket: message.ticket });
    socket.write('from the child ' + Buffer.from(message.head, 'base64').toString());
  }
  if (message.type === 'tunnel-close') {
    held.get(message.ticket)?.destroy();
    process.send({ type: 'tunnel-closed', ticket: message.ticket });
  }
});
`;

let dir: string;
let server: net.Server;
const children: ChildProcess[] = [];
const sockets: net.Socket[] = [];

function child(mode: string): ChildProcess {
  const proc = fork(path.join(dir, 'child.js'), [], { env: { ...process.env, MODE: mode }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.push(proc);
  return proc;
}

async function connection(): Promise<{ desktop: net.Socket; handed: net.Socket }> {
  const handed = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const desktop = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  sockets.push(desktop);
  return { desktop, handed: await handed };
}

/** The outcome as a promise of what happened first. */
function outcome(): { outcome: HandOffOutcome; settled: Promise<{ accepted?: TunnelEnd; refused?: [number, string]; failed?: RelayError }> } {
  let settle!: (value: { accepted?: TunnelEnd; refused?: [number, string]; failed?: RelayError }) => void;
  const settled = new Promise<{ accepted?: TunnelEnd; refused?: [number, string]; failed?: RelayError }>((resolve) => (settle = resolve));
  return {
    settled,
    outcome: {
      accepted: (tunnel) => settle({ accepted: tunnel }),
      refused: (status, code) => settle({ refused: [status, code] }),
      failed: (error) => settle({ failed: error }),
    },
  };
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-handoff-'));
  fs.writeFileSync(path.join(dir, 'child.js'), CHILD);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

beforeEach(async () => {
  server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});

afterEach(async () => {
  for (const proc of children.splice(0)) proc.kill('SIGKILL');
  for (const socket of sockets.splice(0)) socket.destroy();
  await new Promise((resolve) => server.close(resolve));
});

it('hands the socket over: the desktop then talks to the child, with the bytes read past its request passed along', async () => {
  const proc = child('accept');
  const handOffs = new TunnelHandOffs(proc);
  const { desktop, handed } = await connection();
  const { outcome: result, settled } = outcome();
  const heard = new Promise<string>((resolve) => desktop.once('data', (chunk: Buffer) => resolve(chunk.toString())));
  handOffs.handOff(handed, { upgrade: 'websocket' }, Buffer.from('head'), result);
  expect((await settled).accepted).toBeDefined();
  expect(await heard).toBe('from the child head');
});

it('closes an accepted tunnel when asked (the drain), and says so once the child closed it', async () => {
  const proc = child('accept');
  const handOffs = new TunnelHandOffs(proc);
  const { desktop, handed } = await connection();
  const { outcome: result, settled } = outcome();
  handOffs.handOff(handed, {}, Buffer.alloc(0), result);
  const tunnel = (await settled).accepted!;
  const closed = new Promise((resolve) => tunnel.once('close', resolve));
  const ended = new Promise((resolve) => desktop.once('close', resolve));
  desktop.resume(); // the child's greeting is read, so the end behind it shows
  tunnel.destroy();
  await Promise.all([closed, ended]);
});

it('closes every accepted tunnel when the child exits', async () => {
  const proc = child('accept');
  const handOffs = new TunnelHandOffs(proc);
  const { handed } = await connection();
  const { outcome: result, settled } = outcome();
  handOffs.handOff(handed, {}, Buffer.alloc(0), result);
  const tunnel = (await settled).accepted!;
  const closed = new Promise((resolve) => tunnel.once('close', resolve));
  proc.kill('SIGKILL');
  await closed;
});

it('fails a handoff whose child exits before answering, as the proxy being unreachable', async () => {
  const handOffs = new TunnelHandOffs(child('exit'));
  const { handed } = await connection();
  const { outcome: result, settled } = outcome();
  handOffs.handOff(handed, {}, Buffer.alloc(0), result);
  const { failed } = await settled;
  expect([failed?.status, failed?.code]).toEqual([503, 'proxy_unreachable']);
});

it('fails a handoff the child closed without answering it, rather than waiting for an answer that will not come', async () => {
  const handOffs = new TunnelHandOffs(child('close-first'));
  const { desktop, handed } = await connection();
  const { outcome: result, settled } = outcome();
  const ended = new Promise((resolve) => desktop.once('close', resolve));
  handOffs.handOff(handed, {}, Buffer.alloc(0), result);
  const { failed } = await settled;
  expect(failed?.status).toBe(502);
  await ended;
});

it('fails a handoff at once when the child is already gone, and the desktop hears a 503 on its socket', async () => {
  const proc = child('accept');
  await new Promise((resolve) => {
    proc.once('exit', resolve);
    proc.kill('SIGKILL');
  });
  const handOffs = new TunnelHandOffs(proc);
  const { handed } = await connection();
  const { outcome: result, settled } = outcome();
  handOffs.handOff(handed, {}, Buffer.alloc(0), result);
  const { failed } = await settled;
  expect(failed?.code).toBe('proxy_unreachable');
  expect(handed.destroyed).toBe(false); // still ours: the caller answers the desktop on it
});
