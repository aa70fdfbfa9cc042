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

  it('never reports the exit of a container another replica stopped gracefully', () => {
    const ledger = new ExitLedger();
    ledger.stopSeen('c1'); // the engine's kill event (SIGTERM) comes before die and destroy
    expect(ledger.isExpected('c1')).toBe(true);
    expect(ledger.claimReport('c1')).toBe(false);
  });

  it('reports a container stopped elsewhere and never removed (an operator stop) once, late', () => {
    const ledger = new ExitLedger();
    const before = Date.now();
    ledger.stopSeen('theirs');
    ledger.stopSeen('ours');
    ledger.expect('ours');
    expect(ledger.claimLateReport('theirs', before - 1)).toBe(false); // whoever stopped it may still remove it
    expect(ledger.claimLateReport('theirs', Date.now())).toBe(true);
    expect(ledger.claimLateReport('theirs', Date.now())).toBe(false);
    expect(ledger.claimLateReport('ours', Date.now())).toBe(false);
    expect(ledger.claimLateReport('never-stopped', Date.now())).toBe(false);
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
