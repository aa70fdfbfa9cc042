/**
 * What a relay started without ZROK_ALLOW_INSECURE refuses to register as a zrok share: anything
 * off the allowed zrok frontends (ZROK_SHARE_DOMAINS), plain http, credentials in the URL, and
 * every name or literal that is (or resolves to) a private, loopback, link-local, unspecified or
 * multicast address, each with a 400 that names the problem. Only literals and `localhost` are
 * used, so no test needs real DNS (the allow-list is checked before any lookup).
 */
import { startLayout, type Layout } from './helpers/layout';
import { startLlmServer, type LlmServer } from './helpers/llm-server';

const PRIVATE_ADDRESSES: Array<[string, string]> = [
  ['https://127.0.0.1:8443', 'loopback'],
  ['https://localhost', 'loopback'],
  ['https://2130706433', 'loopback'],
  ['https://10.1.2.3', 'private'],
  ['https://172.20.0.1', 'private'],
  ['https://192.168.1.10', 'private'],
  ['https://100.64.0.1', 'shared'],
  ['https://169.254.169.254', 'link-local'],
  ['https://0.0.0.0', 'unspecified'],
  ['https://224.0.0.1', 'multicast'],
  ['https://[::1]', 'loopback'],
  ['https://[::]', 'unspecified'],
  ['https://[::ffff:127.0.0.1]', 'loopback'],
  ['https://[::ffff:10.0.0.1]', 'private'],
  ['https://[fe80::1]', 'link-local'],
  ['https://[fd00::1]', 'private'],
  ['https://[ff02::1]', 'multicast'],
];

describe('zrok share registration without the dev setting', () => {
  let layout: Layout;
  let share: LlmServer;

  beforeAll(async () => {
    share = await startLlmServer();
    // The operator allows these hosts as frontends, so the address checks behind the list run.
    const hosts = ['example.com', ...PRIVATE_ADDRESSES.map(([url]) => new URL(url).hostname)];
    layout = await startLayout({ env: { ZROK_SHARE_DOMAINS: hosts.join(',') } });
  });
  afterAll(async () => {
    await layout?.close();
    await share?.close();
  });

  const asMallory = (method: string, pathname: string, body?: unknown) =>
    fetch(`${layout.relay.url}${pathname}`, {
      method,
      headers: { authorization: `Bearer ${layout.token('mallory')}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  const refusal = async (publicUrl: unknown) => {
    const res = await asMallory('POST', '/api/zrok/register', { tunnelInfo: { publicUrl } });
    return { status: res.status, error: ((await res.json()) as { error: { code: string; message: string } }).error };
  };

  it('refuses plain http', async () => {
    const { status, error } = await refusal(share.url);
    expect(status).toBe(400);
    expect(error.code).toBe('share_url_insecure');
    expect(error.message).toMatch(/must use https/);
  });

  it('refuses credentials in the URL', async () => {
    const { status, error } = await refusal('https://user:secret@example.com');
    expect(status).toBe(400);
    expect(error.code).toBe('share_url_credentials');
    expect(error.message).toMatch(/must not contain credentials/);
  });

  it.each(PRIVATE_ADDRESSES)('refuses %s (a %s address)', async (publicUrl, kind) => {
    const { status, error } = await refusal(publicUrl);
    expect(status).toBe(400);
    expect(error.code).toBe('share_url_private_address');
    expect(error.message).toContain(`${kind} address`);
  });

  it.each([
    ['ftp://example.com', 'share_url_invalid'],
    ['not a url', 'share_url_invalid'],
    ['https://example.com/?token=1', 'share_url_invalid'],
    [42, 'bad_request'],
  ])('refuses %p with a 400 naming the field', async (publicUrl, code) => {
    const { status, error } = await refusal(publicUrl);
    expect(status).toBe(400);
    expect(error.code).toBe(code);
    expect(error.message).toMatch(/tunnelInfo\.publicUrl/);
  });

  it('starts no proxy for a refused share', async () => {
    const res = await asMallory('GET', '/api/proxy/status');
    expect(((await res.json()) as { status: string }).status).toBe('not-found');
  });
});

describe('zrok share registration with the default allow-list (the public zrok frontend only)', () => {
  let layout: Layout;

  beforeAll(async () => {
    layout = await startLayout();
  });
  afterAll(async () => {
    await layout?.close();
  });

  it.each([
    ['https://1.1.1.1:22', 'share_url_not_allowed'],
    ['https://example.com', 'share_url_not_allowed'],
    ['https://abc.share.zrok.io.example.com', 'share_url_not_allowed'],
    ['https://127.0.0.1:8443', 'share_url_not_allowed'],
    ['http://abc123.share.zrok.io', 'share_url_insecure'],
  ])('refuses %s (%s), and the relay makes no connection for it', async (publicUrl, code) => {
    const res = await fetch(`${layout.relay.url}/api/zrok/register`, {
      method: 'POST',
      headers: { authorization: `Bearer ${layout.token('mallory')}`, 'content-type': 'application/json' },
      body: JSON.stringify({ tunnelInfo: { publicUrl } }),
    });
    expect(res.status).toBe(400);
    const { error } = (await res.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe(code);
    if (code === 'share_url_not_allowed') expect(error.message).toContain('share.zrok.io');
    const status = await fetch(`${layout.relay.url}/api/proxy/status`, { headers: { authorization: `Bearer ${layout.token('mallory')}` } });
    expect(((await status.json()) as { status: string }).status).toBe('not-found');
  });
});
