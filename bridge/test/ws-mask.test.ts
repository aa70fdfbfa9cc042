/**
 * Frame masks (RFC 6455 §5.3): the all-zero key only for a relay on loopback reached directly,
 * where nobody between the bridge and the relay can read the bytes; fresh random keys for every
 * relay elsewhere, wss: included (TLS-inspecting proxies read the frames). On the wire: what a
 * relay on loopback receives, and what a relay elsewhere receives.
 */
import type { Socket } from 'node:net';
import { startBridge, type Bridge } from '../src';
import { maskFor } from '../src/ws-mask';
import { startFakeRelay, type FakeRelay } from './fake-relay';
import { startConnectProxy, startTarget, type ConnectProxy, type Target } from './helpers';
import { maskKeys } from '../../tests/helpers/ws-frames';

describe('maskFor', () => {
  it.each(['ws://127.0.0.1:8080/ws/tunnel', 'wss://127.0.0.1/ws/tunnel', 'ws://127.8.9.1/ws/tunnel', 'ws://localhost:3000/ws/tunnel', 'ws://[::1]:3000/ws/tunnel'])(
    'uses the zero key for %s',
    (url) => {
      const generate = maskFor(new URL(url));
      expect(generate).toBeDefined();
      const mask = Buffer.from([1, 2, 3, 4]);
      generate!(mask);
      expect([...mask]).toEqual([0, 0, 0, 0]);
    },
  );

  it.each([
    'wss://relay.example.com/ws/tunnel',
    'ws://relay.example.com/ws/tunnel',
    'wss://10.0.0.5/ws/tunnel',
    'ws://10.0.0.5:3000/ws/tunnel',
    'ws://127.0.0.1.example.com/ws/tunnel',
    'ws://[::2]/ws/tunnel',
  ])('keeps random keys for a relay elsewhere: %s', (url) => {
    expect(maskFor(new URL(url))).toBeUndefined();
  });

  it('keeps random keys for a loopback relay reached through a proxy', () => {
    expect(maskFor(new URL('ws://127.0.0.1:8080/ws/tunnel'), true)).toBeUndefined();
  });
});

describe('frames a relay on loopback receives', () => {
  let target: Target;
  let relay: FakeRelay;
  let bridge: Bridge | undefined;

  beforeAll(async () => {
    target = await startTarget();
    relay = await startFakeRelay();
  });
  afterAll(async () => {
    await bridge?.close();
    await relay.close();
    await target.close();
  });

  it('are masked with the zero key and arrive intact', async () => {
    bridge = startBridge({ server: relay.url, token: 'tok-mask', target: target.url, backoff: { stepsMs: [30], jitter: 0 } });
    const peer = await relay.nextPeer();
    await bridge.waitConnected();
    const raw: Buffer[] = [];
    (peer.request.socket as Socket).on('data', (chunk: Buffer) => raw.push(chunk));
    peer.send({ type: 'http_request', id: 'm1', method: 'GET', path: '/json/1', headers: {}, end: true });
    await peer.waitFor((m) => m.type === 'end' && m.id === 'm1');
    const keys = maskKeys(Buffer.concat(raw));
    expect(keys.length).toBeGreaterThanOrEqual(2); // the answer's head, its body and its end
    for (const key of keys) expect([...key]).toEqual([0, 0, 0, 0]);
    expect(peer.controls.some((m) => m.type === 'http_response' && m.id === 'm1' && m.status === 200)).toBe(true);
  });
});

describe('frames a relay elsewhere receives', () => {
  let target: Target;
  let relay: FakeRelay;
  let proxy: ConnectProxy;
  let bridge: Bridge | undefined;

  beforeAll(async () => {
    target = await startTarget();
    relay = await startFakeRelay();
    // The relay is named as a host elsewhere; the proxy takes every CONNECT to the fake relay on 127.0.0.1.
    proxy = await startConnectProxy({ host: '127.0.0.1', port: Number(new URL(relay.url).port) });
  });
  afterAll(async () => {
    await bridge?.close();
    proxy.close();
    await relay.close();
    await target.close();
  });

  it('carry fresh non-zero masks, one per frame, and arrive intact', async () => {
    // Plain ws: so the test relay can read the frames; not loopback, so the bridge must mask them.
    bridge = startBridge({ server: 'ws://relay.example.com:8080', allowInsecure: true, token: 'tok-mask', target: target.url, proxy: proxy.url, backoff: { stepsMs: [30], jitter: 0 } });
    const peer = await relay.nextPeer();
    await bridge.waitConnected();
    expect(proxy.connects).toEqual(['relay.example.com:8080']);
    const raw: Buffer[] = [];
    (peer.request.socket as Socket).on('data', (chunk: Buffer) => raw.push(chunk));
    for (const id of ['r1', 'r2']) {
      peer.send({ type: 'http_request', id, method: 'GET', path: '/json/1', headers: {}, end: true });
      await peer.waitFor((m) => m.type === 'end' && m.id === id);
    }
    const keys = maskKeys(Buffer.concat(raw)).map((key) => key.toString('hex'));
    expect(keys.length).toBeGreaterThanOrEqual(4); // each answer's head, body and end
    expect(keys).not.toContain('00000000');
    // Random 32-bit keys: a repeat among a handful would mean a fixed or counting key.
    expect(new Set(keys).size).toBe(keys.length);
    expect(peer.controls.flatMap((m) => (m.type === 'http_response' && m.status === 200 ? [m.id] : []))).toEqual(['r1', 'r2']);
  });
});
