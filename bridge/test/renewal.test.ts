import { renewalDelay } from '../src/auth/renewal';
import { tokenExpiry } from '../src/token';

describe('when the bridge renews its token', () => {
  const now = 1_000_000;

  it('renews a 10 s token 2 s before it expires, leaving the relay time to retry within its grace', () => {
    expect(renewalDelay(now + 10_000, now)).toBe(8_000);
  });

  it('renews an hour-long token a minute before it expires, not a fifth of an hour early', () => {
    expect(renewalDelay(now + 3_600_000, now)).toBe(3_540_000);
  });

  it('waits at least a second between attempts when the token is about to expire', () => {
    expect(renewalDelay(now + 500, now)).toBe(1_000);
  });

  it('never schedules a renewal for a credential that does not expire, or has already expired', () => {
    expect(renewalDelay(undefined, now)).toBeUndefined();
    expect(renewalDelay(now - 1, now)).toBeUndefined();
  });

  it("reads a --token's expiry from its exp claim, and none from a relay key", () => {
    const payload = Buffer.from(JSON.stringify({ sub: 'u', exp: 2_000_000_000 })).toString('base64url');
    expect(tokenExpiry(`e30.${payload}.sig`)).toBe(2_000_000_000_000);
    expect(tokenExpiry('ctll_abcdefghijklmnopqrstuvwxyz')).toBeUndefined();
  });
});
