import { renewalDelay, RenewalTimer } from '../src/auth/renewal';
import { FixedTokenSource } from '../src/auth/token-source';
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

describe('a link whose token the source has already replaced', () => {
  const jwt = (exp: number) => `e30.${Buffer.from(JSON.stringify({ sub: 'u', exp })).toString('base64url')}.sig`;

  it("hands over the newer token before the relay's copy expires, not on the newer token's schedule", async () => {
    // The relay holds a token ending in about 2 s; the source renewed meanwhile (a slow connect) to one good for 10 minutes.
    const held = jwt(Math.ceil((Date.now() + 2_000) / 1000));
    const newer = jwt(Math.ceil((Date.now() + 600_000) / 1000));
    const delivered: string[] = [];
    const timer = new RenewalTimer(new FixedTokenSource(newer, tokenExpiry(newer)), () => held, (token) => delivered.push(token), () => undefined);
    timer.start();
    try {
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      expect(delivered).toEqual([newer]);
    } finally {
      timer.stop();
    }
  });
});
