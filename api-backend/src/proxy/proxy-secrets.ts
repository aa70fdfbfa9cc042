/**
 * Each proxy's secret is HMAC-SHA256(key, owner hash): api-backend hands it to the proxy at start
 * (PROXY_SECRET) and can recompute it at any time, so checking a proxy's proof (zrok discovery)
 * needs no look at the proxy's container. The key is PROXY_SECRET_KEY, or one made once in
 * DATA_DIR; it must stay the same across restarts (and be shared by replicas on one engine), or
 * proxies adopted from a previous process could no longer prove themselves.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const KEY_FILE = 'proxy-secret.key';

export class ProxySecrets {
  private readonly key: Buffer;

  constructor(key: Buffer) {
    if (key.length < 32) throw new Error('the proxy secret key must be at least 32 bytes');
    this.key = key;
  }

  /** PROXY_SECRET_KEY (hex) when given, else the key in DATA_DIR, made on first start. */
  static load(options: { key?: string; dataDir: string }): ProxySecrets {
    if (options.key) return new ProxySecrets(Buffer.from(options.key, 'hex'));
    const file = path.join(options.dataDir, KEY_FILE);
    if (!fs.existsSync(file)) {
      fs.mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
      // wx: two relays starting at once on one DATA_DIR must end up with the same key.
      try {
        fs.writeFileSync(file, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
    }
    return new ProxySecrets(Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'hex'));
  }

  /** The secret of the owner's proxy, whichever process or container runs it. */
  secretFor(ownerHash: string): string {
    return createHmac('sha256', this.key).update(ownerHash, 'utf8').digest('hex');
  }

  /** Constant-time: hashing both sides first gives timingSafeEqual the equal lengths it needs. */
  verify(ownerHash: string, given: string): boolean {
    return timingSafeEqual(digest(given), digest(this.secretFor(ownerHash)));
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}
