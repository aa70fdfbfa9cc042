import { ExitLedger } from '../src/proxy/exit-ledger';

describe('ExitLedger', () => {
  it('reports an unexpected exit once, whichever event brings it first', () => {
    const ledger = new ExitLedger();
    expect(ledger.claimReport('c1')).toBe(true); // oom
    expect(ledger.claimReport('c1')).toBe(false); // die
    expect(ledger.claimReport('c1')).toBe(false); // destroy, or the sweep
    expect(ledger.claimReport('c2')).toBe(true);
  });

  it('never reports an exit we caused', () => {
    const ledger = new ExitLedger();
    ledger.expect('c1');
    expect(ledger.isExpected('c1')).toBe(true);
    expect(ledger.claimReport('c1')).toBe(false);
  });

  it('forgets entries after their time', async () => {
    const ledger = new ExitLedger(20);
    ledger.expect('old');
    await new Promise((resolve) => setTimeout(resolve, 40));
    ledger.expect('new');
    expect(ledger.isExpected('old')).toBe(false);
    expect(ledger.isExpected('new')).toBe(true);
  });
});
