/** The audit's small parts on their own: the retry schedule, page cursors, the bridge's client name, the FIFO, the security counter. */
import { backoffDelay, doublingSteps } from '@ctll/protocol';
import { Fifo } from '../api-backend/src/audit/fifo';
import type { SecurityRecord } from '../api-backend/src/audit/records';
import { SecurityCounter } from '../api-backend/src/audit/security-counter';
import { describeUrl, mapPgError } from '../api-backend/src/audit/pg-database';
import { clientName } from '../api-backend/src/audit/record-sql';
import { decodeCursor, encodeCursor } from '../api-backend/src/audit/sessions';
import { DatabaseQueryError, DatabaseUnavailableError } from '../api-backend/src/audit/errors';
import pg from 'pg';

describe('audit retry schedule', () => {
  const options = { stepsMs: doublingSteps(250, 5000), jitter: 0 };
  it('doubles from the first delay up to the cap', () => {
    expect([1, 2, 3, 4, 5, 6, 10].map((attempt) => backoffDelay(attempt, options))).toEqual([250, 500, 1000, 2000, 4000, 5000, 5000]);
  });
  it('spreads each delay by the jitter, both ways', () => {
    const spread = { ...options, jitter: 0.2 };
    expect(backoffDelay(3, { ...spread, random: () => 0 })).toBe(800);
    expect(backoffDelay(3, { ...spread, random: () => 1 })).toBe(1200);
  });
});

describe('session page cursors', () => {
  it('come back as they went out', () => {
    const cursor = { sortAt: '2030-01-01T12:00:00.000Z', kind: 'tunnel' as const, id: '42' };
    expect(decodeCursor(encodeCursor(cursor))).toEqual(cursor);
  });
  it.each([
    ['not base64 json', 'nope'],
    ['the wrong shape', Buffer.from(JSON.stringify({ a: 1 })).toString('base64url')],
    ['a bad date', Buffer.from(JSON.stringify(['yesterday', 'proxy', '1'])).toString('base64url')],
    ['a bad kind', Buffer.from(JSON.stringify(['2030-01-01T00:00:00Z', 'user', '1'])).toString('base64url')],
    ['an id that is not a number', Buffer.from(JSON.stringify(['2030-01-01T00:00:00Z', 'proxy', '1; drop table x'])).toString('base64url')],
  ])('are refused with 400 when they hold %s', (_what, text) => {
    expect(() => decodeCursor(text)).toThrow(expect.objectContaining({ status: 400, code: 'bad_cursor' }));
  });
});

describe('bridge client name', () => {
  it('keeps the product token of the user agent: name and version, nothing about the machine', () => {
    expect(clientName('ctll-bridge/0.1.0 (linux; node 20.19.0)')).toBe('ctll-bridge/0.1.0');
    expect(clientName('   ')).toBe('unknown');
    expect(clientName('x'.repeat(500))).toHaveLength(100);
  });
});

describe('node-postgres errors', () => {
  const where = describeUrl('postgres://ctll:secret@db.internal:5432/ctll');
  it('describe the server without the password', () => {
    expect(where).toBe('postgres://ctll@db.internal:5432/ctll');
  });
  it('count a refused connection, a reset and an unknown failure as "unavailable", to be retried', () => {
    for (const error of [Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), new Error('Connection terminated unexpectedly')]) {
      const mapped = mapPgError(error, where);
      expect(mapped).toBeInstanceOf(DatabaseUnavailableError);
      expect((mapped as DatabaseUnavailableError).retryable).toBe(true);
    }
  });
  it('tell a refused login from a refused statement', () => {
    const login = Object.assign(new pg.DatabaseError('password authentication failed', 0, 'error'), { code: '28P01' });
    expect(mapPgError(login, where)).toMatchObject({ retryable: false, status: 503 });
    const shutdown = Object.assign(new pg.DatabaseError('terminating connection due to administrator command', 0, 'error'), { code: '57P01' });
    expect(mapPgError(shutdown, where)).toMatchObject({ retryable: true });
    const check = Object.assign(new pg.DatabaseError('violates check constraint', 0, 'error'), { code: '23514' });
    expect(mapPgError(check, where)).toBeInstanceOf(DatabaseQueryError);
  });
});

describe('audit FIFO', () => {
  it('hands out the front without removing it, and removes only what was written', () => {
    const fifo = new Fifo<number>();
    for (let i = 0; i < 3000; i++) fifo.push(i);
    expect(fifo.peek(3)).toEqual([0, 1, 2]);
    fifo.shift(2000);
    expect(fifo.length).toBe(1000);
    expect(fifo.peek(2)).toEqual([2000, 2001]);
    fifo.shift(5000);
    expect(fifo.length).toBe(0);
    fifo.push(7);
    expect(fifo.peek(5)).toEqual([7]);
  });
});

describe('security event counter', () => {
  const make = (options: { windowMs: number; maxKeys: number }) => {
    let now = Date.UTC(2030, 0, 1, 12, 0, 10);
    const out: SecurityRecord[] = [];
    const counter = new SecurityCounter((record) => out.push(record), options, () => now);
    return { counter, out, advance: (ms: number) => (now += ms) };
  };

  it('turns 300 refusals from one address in one minute into one row with a count', () => {
    const { counter, out, advance } = make({ windowMs: 60_000, maxKeys: 100 });
    for (let i = 0; i < 300; i++) counter.count({ kind: 'auth_failure', reason: 'invalid_token', source: '::ffff:203.0.113.7' });
    expect(out).toEqual([]); // the minute is still open
    advance(50_000); // 12:01:00: the minute has closed
    counter.count({ kind: 'auth_failure', reason: 'invalid_token', source: '203.0.113.7' });
    expect(out).toEqual([
      expect.objectContaining({ type: 'security', at: '2030-01-01T12:00:00.000Z', count: 300, source: '203.0.113.7', kind: 'auth_failure', reason: 'invalid_token' }),
    ]);
    counter.flush();
    expect(out[1]).toMatchObject({ at: '2030-01-01T12:01:00.000Z', count: 1 });
  });

  it('keeps its memory bounded when every refusal comes from another address, counting the rest as "other"', () => {
    const { counter, out } = make({ windowMs: 60_000, maxKeys: 100 });
    for (let i = 0; i < 5000; i++) counter.count({ kind: 'auth_failure', reason: 'invalid_token', source: `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}` });
    expect(counter.size).toBe(101);
    counter.flush();
    expect(out).toHaveLength(101);
    expect(out.reduce((sum, record) => sum + record.count, 0)).toBe(5000);
    expect(out.find((record) => record.source === 'other')).toMatchObject({ count: 4900, kind: 'auth_failure', reason: 'invalid_token' });
  });
});
