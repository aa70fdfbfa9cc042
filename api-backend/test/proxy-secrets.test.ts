import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHmac, randomBytes } from 'node:crypto';
import { ProxySecrets } from '../src/proxy/proxy-secrets';

describe('ProxySecrets (each proxy secret derived from its owner under the relay key)', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-secrets-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('is HMAC-SHA256 of the owner hash, different per owner, and checks only the right one', () => {
    const key = randomBytes(32);
    const secrets = new ProxySecrets(key);
    expect(secrets.secretFor('0123456789abcdef')).toBe(createHmac('sha256', key).update('0123456789abcdef').digest('hex'));
    expect(secrets.secretFor('0123456789abcdef')).not.toBe(secrets.secretFor('fedcba9876543210'));
    expect(secrets.verify('0123456789abcdef', secrets.secretFor('0123456789abcdef'))).toBe(true);
    expect(secrets.verify('0123456789abcdef', secrets.secretFor('fedcba9876543210'))).toBe(false);
    expect(secrets.verify('0123456789abcdef', '')).toBe(false);
  });

  it('keeps the key it made in DATA_DIR, so a restarted relay derives the same secrets (adopted proxies keep working)', () => {
    const first = ProxySecrets.load({ dataDir: dir }).secretFor('0123456789abcdef');
    expect(fs.statSync(path.join(dir, 'proxy-secret.key')).mode & 0o777).toBe(0o600);
    expect(ProxySecrets.load({ dataDir: dir }).secretFor('0123456789abcdef')).toBe(first);
    const otherDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-secrets-'));
    try {
      expect(ProxySecrets.load({ dataDir: otherDir }).secretFor('0123456789abcdef')).not.toBe(first);
    } finally {
      fs.rmSync(otherDir, { recursive: true, force: true });
    }
  });

  it('uses PROXY_SECRET_KEY over the file, so replicas sharing one engine agree', () => {
    const key = 'cd'.repeat(32);
    const a = ProxySecrets.load({ key, dataDir: dir });
    expect(a.secretFor('0123456789abcdef')).toBe(new ProxySecrets(Buffer.from(key, 'hex')).secretFor('0123456789abcdef'));
    expect(fs.existsSync(path.join(dir, 'proxy-secret.key'))).toBe(false);
  });
});
