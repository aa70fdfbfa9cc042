import { DEFAULT_OPTIONS, OptionError, relayUrlFor, resolveOptions, tunnelUrlFor } from '../src';
import { bypassesProxy, chooseProxy } from '../src/proxy';
import { tokenSubject } from '../src/token';
import { joinPath } from '../src/local-forwarder';

describe('where the bridge dials', () => {
  it('turns the relay URL into its tunnel endpoint', () => {
    expect(tunnelUrlFor('https://relay.example.com').href).toBe('wss://relay.example.com/ws/tunnel');
    expect(tunnelUrlFor('http://127.0.0.1:8080/').href).toBe('ws://127.0.0.1:8080/ws/tunnel');
    expect(tunnelUrlFor('https://example.com/ctll').href).toBe('wss://example.com/ctll/ws/tunnel');
    expect(tunnelUrlFor('ws://127.0.0.1:9/ws/tunnel').href).toBe('ws://127.0.0.1:9/ws/tunnel');
  });

  it('polls the same relay over plain HTTP, base path kept', () => {
    const relay = (server: string) => relayUrlFor(tunnelUrlFor(server)).href.replace(/\/$/, '');
    expect(relay('https://relay.example.com')).toBe('https://relay.example.com');
    expect(relay('https://example.com/ctll/')).toBe('https://example.com/ctll');
    expect(relay('ws://127.0.0.1:9/ws/tunnel')).toBe('http://127.0.0.1:9');
    expect(relay('wss://relay.example.com:8443/base/ws/tunnel')).toBe('https://relay.example.com:8443/base');
  });

  it('names the flag of a bad value', () => {
    const base = { server: 'https://relay.example.com', token: 'abc' };
    expect(() => resolveOptions({ ...base, server: 'ftp://x' })).toThrow(/^--server: "ftp:\/\/x" must be/);
    expect(() => resolveOptions({ ...base, server: '' })).toThrow(/^--server: is required/);
    expect(() => resolveOptions({ ...base, token: '' })).toThrow(/^--token: is required/);
    expect(() => resolveOptions({ ...base, token: 'two words' })).toThrow(/^--token:/);
    expect(() => resolveOptions({ ...base, target: 'localhost:11434' })).toThrow(/^--target:/);
    expect(() => resolveOptions({ ...base, pingTimeoutMs: 1.5 })).toThrow(/^--ping-timeout-ms:/);
    expect(() => resolveOptions({ ...base, proxy: 'ftp://p:21' })).toThrow(OptionError);
    expect(() => resolveOptions({ ...base, proxy: 'ftp://p:21' })).toThrow(/^--proxy: proxy scheme "ftp:" is not supported/);
    expect(resolveOptions({ ...base, proxy: 'socks5h://p:1080' }).proxyUrl?.href).toBe('socks5h://p:1080');
  });

  it('refuses an unencrypted relay off this computer unless told to allow it', () => {
    const base = { token: 'abc' };
    expect(() => resolveOptions({ ...base, server: 'http://relay.example.com' })).toThrow(
      /^--server: "http:\/\/relay\.example\.com" is not encrypted: your token would cross the network in cleartext/,
    );
    expect(() => resolveOptions({ ...base, server: 'ws://10.0.0.5:8080' })).toThrow(/is not encrypted/);
    expect(resolveOptions({ ...base, server: 'http://relay.example.com', allowInsecure: true }).tunnelUrl.href).toBe('ws://relay.example.com/ws/tunnel');
    for (const loopback of ['http://127.0.0.1:8080', 'http://127.8.9.10', 'http://localhost:8080', 'http://[::1]:8080']) {
      expect(resolveOptions({ ...base, server: loopback }).tunnelUrl.protocol).toBe('ws:');
    }
    // A host that only starts like a loopback address is not one.
    expect(() => resolveOptions({ ...base, server: 'http://127.0.0.1.example.com' })).toThrow(/is not encrypted/);
  });

  it('fills in the written-out defaults', () => {
    const resolved = resolveOptions({ server: 'https://relay.example.com', token: 'abc', target: undefined });
    expect(resolved.targetUrl.href).toBe(`${DEFAULT_OPTIONS.target}/`);
    expect(resolved.pingTimeoutMs).toBe(45_000);
    expect(resolved.transport).toBe('ws');
    expect(resolved.fallback).toBe(true);
    expect(resolved.wsRetryMs).toBe(5 * 60_000);
    expect(resolveOptions({ server: 'https://relay.example.com', token: 'abc', fallback: false }).fallback).toBe(false);
    expect(Object.isFrozen(DEFAULT_OPTIONS)).toBe(true);
  });

  it('keeps the target base path in front of every relayed path', () => {
    expect(joinPath('/', '/api/chat')).toBe('/api/chat');
    expect(joinPath('/v1/', '/chat/completions?x=1')).toBe('/v1/chat/completions?x=1');
  });
});

describe('corporate proxy choice', () => {
  const wss = new URL('wss://relay.example.com/ws/tunnel');
  const ws = new URL('ws://10.1.2.3:8080/ws/tunnel');

  it('uses the scheme’s own variable, then ALL_PROXY; --proxy wins', () => {
    const env = { httpsProxy: 'http://secure:3128', httpProxy: 'http://plain:3128', allProxy: 'all:8080' };
    expect(chooseProxy(wss, undefined, env)?.href).toBe('http://secure:3128/');
    expect(chooseProxy(ws, undefined, env)?.href).toBe('http://plain:3128/');
    expect(chooseProxy(ws, undefined, { allProxy: 'all:8080' })?.href).toBe('http://all:8080/');
    expect(chooseProxy(wss, 'http://flag:1', { ...env, noProxy: '*' })?.href).toBe('http://flag:1/');
    expect(chooseProxy(wss, undefined, {})).toBeUndefined();
  });

  it('honours NO_PROXY', () => {
    expect(bypassesProxy(wss, 'example.com')).toBe(true);
    expect(bypassesProxy(wss, '.example.com')).toBe(true);
    expect(bypassesProxy(wss, '*.example.com')).toBe(true);
    expect(bypassesProxy(wss, 'localhost, relay.example.com:443')).toBe(true);
    expect(bypassesProxy(wss, 'relay.example.com:8443')).toBe(false);
    expect(bypassesProxy(wss, 'ample.com')).toBe(false);
    expect(bypassesProxy(ws, '10.1.2.3')).toBe(true);
    expect(chooseProxy(wss, undefined, { httpsProxy: 'http://p:1', noProxy: 'example.com' })).toBeUndefined();
  });
});

describe('the user shown in the status line', () => {
  it('is the token’s sub, read without verifying', () => {
    const payload = Buffer.from(JSON.stringify({ sub: 'alice', aud: 'x' })).toString('base64url');
    expect(tokenSubject(`e30.${payload}.signature`)).toBe('alice');
    expect(tokenSubject('not-a-jwt')).toBeUndefined();
    expect(tokenSubject('a.%%%.c')).toBeUndefined();
  });
});
