/**
 * The per-user proxy start budget (PROXY_START_RATE_PER_MINUTE) held across two api-backend
 * replicas sharing one PostgreSQL database: starts made through either replica spend one budget,
 * a start of a running proxy costs nothing, and while the database is away each replica goes on
 * starting proxies and holds its users to the budget on its own. Two whole relays in this process
 * (process driver: the budget does not depend on the driver), each reaching the database through a
 * TCP hop the test can cut.
 *
 * Needs PostgreSQL: required in CI (CTLL_REQUIRE_POSTGRES=1), skipped otherwise.
 */
import { startLayout, type Layout } from './helpers/layout';
import { createTestDatabase, describeWithPostgres, TcpForwarder, viaPort, type TestDatabase } from './helpers/postgres';

const BUDGET = 2;

interface Answer {
  status: number;
  body: { status?: string; error?: { code: string; message: string } };
  retryAfter: string | null;
}

describeWithPostgres('proxy start budget shared by two api-backends on one PostgreSQL', () => {
  let testDb: TestDatabase;
  let forwarder: TcpForwarder;
  const replicas: Layout[] = [];

  beforeAll(async () => {
    testDb = await createTestDatabase();
    forwarder = await TcpForwarder.to(testDb.url).start();
    const env = {
      DATABASE_URL: viaPort(testDb.url, forwarder.port),
      DATABASE_CONNECT_TIMEOUT_MS: '1000',
      PROXY_START_RATE_PER_MINUTE: String(BUDGET),
      // Only the test stops proxies here.
      PROXY_IDLE_TIMEOUT_MS: '600000',
    };
    // One after the other: the first applies the migrations.
    replicas.push(await startLayout({ env }));
    replicas.push(await startLayout({ env }));
  }, 90_000);
  afterAll(async () => {
    await forwarder?.restore().catch(() => undefined);
    await Promise.all(replicas.map((replica) => replica.close()));
    await forwarder?.close();
    await testDb?.drop();
  }, 30_000);

  /** The user's call to /api/proxy/<action> through one replica (each has its own dev signing key). */
  const call = async (replica: number, user: string, action: 'start' | 'stop' | 'status'): Promise<Answer> => {
    const layout = replicas[replica];
    const res = await fetch(`${layout.relay.url}/api/proxy/${action}`, {
      method: action === 'status' ? 'GET' : 'POST',
      headers: { authorization: `Bearer ${layout.token(user)}` },
    });
    return { status: res.status, body: (await res.json()) as Answer['body'], retryAfter: res.headers.get('retry-after') };
  };
  const statuses = async (steps: Array<[number, string, 'start' | 'stop']>) => {
    const seen: string[] = [];
    for (const [replica, user, action] of steps) seen.push(`${action}@${replica} ${(await call(replica, user, action)).status}`);
    return seen;
  };
  const expectRefusedStart = (answer: Answer) => {
    expect(answer.status).toBe(429);
    expect(answer.body.error?.code).toBe('rate_limited');
    expect(answer.body.error?.message).toMatch(new RegExp(`^your proxy was started ${BUDGET} times in the last minute; try again in \\d+ s$`));
    expect(Number(answer.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(answer.retryAfter)).toBeLessThanOrEqual(60);
  };

  it('refuses a third start within the minute with 429 and Retry-After through either replica, after one start through each; another user still starts', async () => {
    const user = 'hopper';
    expect(await statuses([
      [0, user, 'start'],
      [0, user, 'stop'],
      [1, user, 'start'],
      [1, user, 'stop'],
    ])).toEqual(['start@0 201', 'stop@0 200', 'start@1 201', 'stop@1 200']);

    expectRefusedStart(await call(0, user, 'start'));
    expectRefusedStart(await call(1, user, 'start'));
    // The refused starts made nothing on either replica.
    expect((await call(0, user, 'status')).body.status).toBe('not-found');
    expect((await call(1, user, 'status')).body.status).toBe('not-found');

    expect((await call(1, 'bystander', 'start')).status).toBe(201);
    expect((await call(0, 'bystander-two', 'start')).status).toBe(201);
  });

  it('charges nothing for starting a proxy that is already running: the budget is spent only by starts that make one', async () => {
    const user = 'repeater';
    expect(await statuses([
      [0, user, 'start'],
      [0, user, 'start'],
      [0, user, 'start'],
      [0, user, 'stop'],
      [1, user, 'start'],
      [1, user, 'start'],
      [1, user, 'stop'],
    ])).toEqual(['start@0 201', 'start@0 200', 'start@0 200', 'stop@0 200', 'start@1 201', 'start@1 200', 'stop@1 200']);
    expectRefusedStart(await call(0, user, 'start'));
  });

  it('keeps starting proxies while PostgreSQL is away, each replica then holding the user to the budget on its own, and shares the count again once it is back', async () => {
    const user = 'stranded';
    await forwarder.cut();
    try {
      expect(await statuses([
        [0, user, 'start'],
        [0, user, 'stop'],
        [0, user, 'start'],
        [0, user, 'stop'],
      ])).toEqual(['start@0 201', 'stop@0 200', 'start@0 201', 'stop@0 200']);
      expectRefusedStart(await call(0, user, 'start'));
      // The other replica never heard of those starts: its own count begins now.
      expect((await call(1, user, 'start')).status).toBe(201);
      expect((await call(1, user, 'stop')).status).toBe(200);
    } finally {
      await forwarder.restore();
    }

    // Back: the replicas share one count again.
    const returner = 'returner';
    expect(await statuses([
      [0, returner, 'start'],
      [0, returner, 'stop'],
      [1, returner, 'start'],
      [1, returner, 'stop'],
    ])).toEqual(['start@0 201', 'stop@0 200', 'start@1 201', 'stop@1 200']);
    expectRefusedStart(await call(0, returner, 'start'));
  });
});
