/**
 * userHash names a user's proxy, network and audit rows, and is now remembered per user id: a
 * remembered hash must be the very hash SHA-256 gives, for every user, also after many other
 * users pushed the oldest ones out.
 */
import { createHash } from 'node:crypto';
import { userHash } from '../src/proxy/naming';

const sha = (userId: string) => createHash('sha256').update(userId, 'utf8').digest('hex').slice(0, 16);

describe('userHash', () => {
  it('gives the first 16 hex characters of SHA-256 of the user id, the second time as the first', () => {
    for (const userId of ['alice', 'auth0|65f0c1', 'ünïcødé', '']) {
      expect(userHash(userId)).toBe(sha(userId));
      expect(userHash(userId)).toBe(sha(userId));
    }
  });

  it('keeps every user distinct and correct after more users than it remembers came and went', () => {
    const ids = Array.from({ length: 5000 }, (_, i) => `user-${i}`);
    for (const id of ids) userHash(id);
    for (const id of ids) expect(userHash(id)).toBe(sha(id));
    expect(new Set(ids.map(userHash)).size).toBe(ids.length);
  });
});
