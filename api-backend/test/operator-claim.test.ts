import { ConfigError, loadConfig } from '../src/config';
import { holdsOperatorClaim } from '../src/auth/operator-claim';
import { RecentErrors } from '../src/operator/recent-errors';

const defaults = { proxyScript: '/tmp/proxy.js' };
const claimOf = (text: string) => loadConfig({ ADMIN_CLAIM: text }, defaults).operatorClaim;

describe('ADMIN_CLAIM', () => {
  it('makes nobody an operator by default', () => {
    expect(loadConfig({}, defaults).operatorClaim).toBeUndefined();
    expect(holdsOperatorClaim({ sub: 'olga', roles: ['ctll-admin'] }, loadConfig({}, defaults).operatorClaim)).toBe(false);
  });

  it('refuses a value that is not claim=value, naming the setting', () => {
    for (const text of ['ctll-admin', 'roles=', '=ctll-admin', 'roles = ctll-admin']) {
      expect(() => claimOf(text)).toThrow(ConfigError);
      expect(() => claimOf(text)).toThrow(/ADMIN_CLAIM=.*claim=value/);
    }
  });

  it('finds the value as the claim itself or in a list of strings, and nowhere else', () => {
    const claim = claimOf('roles=ctll-admin');
    expect(holdsOperatorClaim({ roles: 'ctll-admin' }, claim)).toBe(true);
    expect(holdsOperatorClaim({ roles: ['viewer', 'ctll-admin'] }, claim)).toBe(true);
    expect(holdsOperatorClaim({ roles: ['viewer'] }, claim)).toBe(false);
    expect(holdsOperatorClaim({ roles: 'ctll-admins' }, claim)).toBe(false);
    expect(holdsOperatorClaim({ roles: [['ctll-admin']] }, claim)).toBe(false);
    expect(holdsOperatorClaim({ roles: { 'ctll-admin': true } }, claim)).toBe(false);
    expect(holdsOperatorClaim({ groups: ['ctll-admin'] }, claim)).toBe(false);
  });

  it("reads an Auth0 namespaced claim whole, and a Keycloak role nested by dots", () => {
    const auth0 = claimOf('https://relay.example.com/roles=ctll-admin');
    expect(holdsOperatorClaim({ 'https://relay.example.com/roles': ['ctll-admin'] }, auth0)).toBe(true);
    const keycloak = claimOf('realm_access.roles=ctll-admin');
    expect(holdsOperatorClaim({ realm_access: { roles: ['offline_access', 'ctll-admin'] } }, keycloak)).toBe(true);
    expect(holdsOperatorClaim({ realm_access: ['ctll-admin'] }, keycloak)).toBe(false);
    // Only own properties: nothing inherited from Object.prototype is a claim.
    expect(holdsOperatorClaim({}, claimOf('constructor.name=Object'))).toBe(false);
  });
});

describe("the operator's recent errors", () => {
  const at = (minute: number) => Date.UTC(2026, 0, 1, 12, minute, 30);

  it('counts each code over the last hour, the most frequent first, and forgets what is older', () => {
    const errors = new RecentErrors();
    errors.record('not_found', 404, at(0));
    errors.record('not_found', 404, at(10));
    errors.record('capacity', 503, at(10));
    errors.record('not_found', 404, at(59));
    expect(errors.byCode(at(59))).toEqual([
      { code: 'not_found', status: 404, count: 3, lastAt: new Date(at(59)).toISOString() },
      { code: 'capacity', status: 503, count: 1, lastAt: new Date(at(10)).toISOString() },
    ]);
    // An hour after the first: minute 0 has left the window.
    expect(errors.byCode(at(60)).find((entry) => entry.code === 'not_found')?.count).toBe(2);
    expect(errors.byCode(at(130))).toEqual([]);
  });

  it('keeps a bounded number of codes a minute, the rest as other', () => {
    const errors = new RecentErrors();
    for (let i = 0; i < 80; i += 1) errors.record(`code_${i}`, 502, at(1));
    const counted = errors.byCode(at(1));
    expect(counted.length).toBeLessThanOrEqual(51);
    expect(counted.reduce((sum, entry) => sum + entry.count, 0)).toBe(80);
    expect(counted.find((entry) => entry.code === 'other')?.count).toBe(30);
  });
});
