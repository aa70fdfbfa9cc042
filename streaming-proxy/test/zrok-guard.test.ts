import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LookupAddress } from 'node:dns';
import { guardedLookup, checkShareUrl, ShareAddressError, type Resolve } from '../src/zrok/guard';
import { ShareClient } from '../src/zrok/share-client';

const fixed =
  (answers: Record<string, LookupAddress[]>): Resolve =>
  (host, callback) =>
    callback(answers[host] ? null : Object.assign(new Error(`ENOTFOUND ${host}`), { code: 'ENOTFOUND' }), answers[host] ?? []);

function lookupOnce(resolve: Resolve, host: string, options: { all?: boolean; family?: number }, allowInsecure = false) {
  return new Promise<{ error: Error | null; address: unknown; family?: number }>((done) =>
    guardedLookup(allowInsecure, resolve)(host, options, (error, address, family) => done({ error, address, family })),
  );
}

describe('guardedLookup (connect-time check)', () => {
  const resolve = fixed({
    'share.example': [
      { address: '198.41.200.1', family: 4 },
      { address: '2606:4700::1', family: 6 },
    ],
    'rebound.example': [{ address: '127.0.0.1', family: 4 }],
    'mixed.example': [
      { address: '198.41.200.1', family: 4 },
      { address: '::ffff:169.254.169.254', family: 6 },
    ],
  });

  it('hands the socket exactly the public addresses it checked', async () => {
    expect(await lookupOnce(resolve, 'share.example', {})).toEqual({ error: null, address: '198.41.200.1', family: 4 });
    expect(await lookupOnce(resolve, 'share.example', { family: 6 })).toEqual({ error: null, address: '2606:4700::1', family: 6 });
    const all = await lookupOnce(resolve, 'share.example', { all: true });
    expect(all.address).toHaveLength(2);
  });

  it('refuses a name that now resolves to a non-public address (DNS rebinding)', async () => {
    const rebound = await lookupOnce(resolve, 'rebound.example', {});
    expect(rebound.error).toBeInstanceOf(ShareAddressError);
    expect(rebound.error!.message).toMatch(/127\.0\.0\.1, a loopback address/);
    expect(rebound.error!.message).not.toContain('rebound.example'); // zrok host names are share tokens
    expect((await lookupOnce(resolve, 'mixed.example', { all: true })).error).toBeInstanceOf(ShareAddressError);
  });

  it('lets anything through when insecure shares are allowed (development)', async () => {
    expect(await lookupOnce(resolve, 'rebound.example', {}, true)).toEqual({ error: null, address: '127.0.0.1', family: 4 });
  });
});

describe('checkShareUrl', () => {
  it('refuses non-public literals, http and credentials unless allowed', () => {
    const any = ['10.0.0.1', '::ffff:7f00:1', 'share.example', '8.8.8.8'];
    expect(() => checkShareUrl(new URL('https://10.0.0.1'), false, any)).toThrow(/a private address/);
    expect(() => checkShareUrl(new URL('https://[::ffff:127.0.0.1]'), false, any)).toThrow(ShareAddressError);
    expect(() => checkShareUrl(new URL('http://share.example'), false, any)).toThrow(/not https/);
    expect(() => checkShareUrl(new URL('https://u:p@share.example'), true, any)).toThrow(/credentials/);
    expect(() => checkShareUrl(new URL('https://8.8.8.8'), false, any)).not.toThrow();
    expect(() => checkShareUrl(new URL('http://10.0.0.1'), true, any)).not.toThrow();
  });

  it('refuses a share outside the allowed zrok frontends before any lookup, even in insecure mode', () => {
    const zrok = ['share.zrok.io'];
    expect(() => checkShareUrl(new URL('https://1.1.1.1:22'), false, zrok)).toThrow(/not on an allowed zrok frontend/);
    expect(() => checkShareUrl(new URL('https://example.com'), false, zrok)).toThrow(ShareAddressError);
    expect(() => checkShareUrl(new URL('https://share.zrok.io.evil.example'), false, zrok)).toThrow(ShareAddressError);
    expect(() => checkShareUrl(new URL('https://evilshare.zrok.io'), false, zrok)).toThrow(ShareAddressError);
    expect(() => checkShareUrl(new URL('http://127.0.0.1:9'), true, zrok)).toThrow(ShareAddressError);
    expect(() => checkShareUrl(new URL('https://abc123.share.zrok.io'), false, zrok)).not.toThrow();
    expect(() => checkShareUrl(new URL('https://ABC123.Share.Zrok.IO.'), false, zrok)).not.toThrow();
  });
});

describe('ShareClient', () => {
  let server: http.Server;
  let port: number;
  let connections = 0;

  beforeAll(async () => {
    server = http.createServer((_req, res) => res.end('ok'));
    server.on('connection', () => (connections += 1));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  const get = (client: ShareClient, url: string) =>
    new Promise<string>((resolve, reject) => {
      const req = client.request(new URL(url), { method: 'GET', path: '/', headers: {} });
      req.on('error', reject);
      req.on('response', (res) => {
        let text = '';
        res.on('data', (chunk) => (text += chunk));
        res.on('end', () => resolve(text));
      });
      req.end();
    });

  it('never opens a socket to an address the policy refuses', async () => {
    const client = new ShareClient({ allowInsecure: false, shareDomains: ['share.test'], resolve: fixed({ 'share.test': [{ address: '127.0.0.1', family: 4 }] }) });
    const before = connections;
    await expect(get(client, `https://share.test:${port}`)).rejects.toBeInstanceOf(ShareAddressError);
    expect(() => client.request(new URL(`https://127.0.0.1:${port}`), { method: 'GET', path: '/', headers: {} })).toThrow(ShareAddressError);
    expect(connections).toBe(before);
    client.close();
  });

  it('connects to the address it resolved and checked, not to a second lookup', async () => {
    // share.test exists nowhere but in this resolver: reaching the server proves the address was pinned.
    const client = new ShareClient({ allowInsecure: true, shareDomains: ['share.test'], resolve: fixed({ 'share.test': [{ address: '127.0.0.1', family: 4 }] }) });
    await expect(get(client, `http://share.test:${port}`)).resolves.toBe('ok');
    client.close();
  });
});
