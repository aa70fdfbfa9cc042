import { BadRequestError, ServiceUnavailableError } from '@ctll/protocol';
import { validateLocalUrl, validatePublicUrl, type SharePolicy } from '../src/zrok/share-url';

/** A resolver with fixed answers, so no test depends on real DNS. */
function resolver(answers: Record<string, string[] | string>): SharePolicy['resolve'] {
  return async (host) => {
    const answer = answers[host];
    if (typeof answer === 'string') throw Object.assign(new Error(`${answer} ${host}`), { code: answer });
    if (!answer) throw Object.assign(new Error(`ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return answer;
  };
}

/** Test hosts stand in for operator-allowed frontends, so the address checks behind the allow-list run. */
const TEST_DOMAINS = ['share.zrok.io', '8.8.8.8', 'example', '127.0.0.1'];

const secure: SharePolicy = {
  allowInsecure: false,
  domains: TEST_DOMAINS,
  resolve: resolver({
    'abc.share.zrok.io': ['198.41.200.1', '2606:4700::6810:1'],
    'rebind.example': ['198.41.200.1', '127.0.0.1'],
    'internal.example': ['10.0.0.5'],
    'mapped.example': ['::ffff:192.168.0.1'],
    'flaky.example': 'EAI_AGAIN',
  }),
};

async function refusal(url: string, policy = secure): Promise<{ code: string; message: string; status: number }> {
  try {
    await validatePublicUrl(url, policy);
  } catch (error) {
    const e = error as BadRequestError;
    return { code: e.code, message: e.message, status: e.status };
  }
  throw new Error(`${url} was accepted`);
}

describe('validatePublicUrl', () => {
  it('accepts an https share whose every address is public, and normalises it', async () => {
    await expect(validatePublicUrl('https://abc.share.zrok.io/', secure)).resolves.toBe('https://abc.share.zrok.io');
    await expect(validatePublicUrl('https://abc.share.zrok.io:8443/ollama/', secure)).resolves.toBe('https://abc.share.zrok.io:8443/ollama');
    await expect(validatePublicUrl('https://8.8.8.8', secure)).resolves.toBe('https://8.8.8.8');
  });

  it('refuses a name with any non-public answer (a rebinding setup answers both)', async () => {
    expect(await refusal('https://rebind.example')).toMatchObject({ status: 400, code: 'share_url_private_address' });
    expect((await refusal('https://rebind.example')).message).toMatch(/resolves to 127\.0\.0\.1, a loopback address/);
    expect((await refusal('https://internal.example')).message).toMatch(/10\.0\.0\.5, a private address/);
    expect((await refusal('https://mapped.example')).message).toMatch(/a private address/);
  });

  it('tells a name that does not exist (400) from a resolver that is down (503)', async () => {
    expect(await refusal('https://missing.example')).toMatchObject({ status: 400, code: 'share_url_unresolvable' });
    await expect(validatePublicUrl('https://flaky.example', secure)).rejects.toBeInstanceOf(ServiceUnavailableError);
  });

  it('refuses http, credentials, other schemes, queries and fragments, naming the field', async () => {
    expect(await refusal('http://abc.share.zrok.io')).toMatchObject({ code: 'share_url_insecure' });
    expect(await refusal('https://u:p@abc.share.zrok.io')).toMatchObject({ code: 'share_url_credentials' });
    expect(await refusal('https://u@abc.share.zrok.io')).toMatchObject({ code: 'share_url_credentials' });
    expect(await refusal('wss://abc.share.zrok.io')).toMatchObject({ code: 'share_url_invalid' });
    expect(await refusal('https://abc.share.zrok.io/#x')).toMatchObject({ code: 'share_url_invalid' });
    expect(await refusal(`https://abc.share.zrok.io/${'a'.repeat(3000)}`)).toMatchObject({ code: 'share_url_invalid' });
    expect((await refusal('nonsense')).message).toMatch(/^tunnelInfo\.publicUrl is not a URL/);
  });

  it('with ZROK_ALLOW_INSECURE, accepts http and private addresses but never credentials', async () => {
    const dev: SharePolicy = { allowInsecure: true, domains: TEST_DOMAINS, resolve: secure.resolve };
    await expect(validatePublicUrl('http://127.0.0.1:11434', dev)).resolves.toBe('http://127.0.0.1:11434');
    await expect(validatePublicUrl('https://internal.example', dev)).resolves.toBe('https://internal.example');
    expect(await refusal('http://u:p@127.0.0.1', dev)).toMatchObject({ code: 'share_url_credentials' });
  });
});

describe('the zrok frontend allow-list (ZROK_SHARE_DOMAINS)', () => {
  const zrokOnly: SharePolicy = { allowInsecure: false, domains: ['share.zrok.io'], resolve: secure.resolve };

  it.each(['https://1.1.1.1:22', 'https://example.com', 'https://share.zrok.io.example.com', 'https://notshare.zrok.io'])(
    'refuses %s: not on an allowed frontend',
    async (url) => {
      expect(await refusal(url, zrokOnly)).toMatchObject({ status: 400, code: 'share_url_not_allowed' });
    },
  );

  it('refuses before any DNS lookup, so a refused URL sends nothing anywhere', async () => {
    const asked: string[] = [];
    const counting: SharePolicy = { ...zrokOnly, resolve: async (host) => (asked.push(host), ['198.41.200.1']) };
    await refusal('https://example.com', counting);
    expect(asked).toEqual([]);
    await expect(validatePublicUrl('https://abc.share.zrok.io', counting)).resolves.toBe('https://abc.share.zrok.io');
    expect(asked).toEqual(['abc.share.zrok.io']);
  });

  it('refuses plain http on the zrok domain, and keeps the list in insecure mode too', async () => {
    expect(await refusal('http://abc.share.zrok.io', zrokOnly)).toMatchObject({ code: 'share_url_insecure' });
    expect(await refusal('http://127.0.0.1:11434', { ...zrokOnly, allowInsecure: true })).toMatchObject({ code: 'share_url_not_allowed' });
  });
});

describe('validateLocalUrl', () => {
  it('takes the desktop’s own address as it is (loopback is normal there) but not credentials', () => {
    expect(validateLocalUrl('http://127.0.0.1:11434/')).toBe('http://127.0.0.1:11434');
    expect(() => validateLocalUrl('http://a:b@127.0.0.1')).toThrow(/tunnelInfo\.localUrl must not contain credentials/);
    expect(() => validateLocalUrl('file:///etc/passwd')).toThrow(BadRequestError);
  });
});
