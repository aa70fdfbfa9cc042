/**
 * What an anonymous caller can do to the relay's own bookkeeping: made-up paths must not add
 * metric series (each one is kept forever), `/metrics` and the health details answer only on the
 * private listener, and the public `/health` tells nothing but "ok" or "degraded".
 */
import { randomBytes } from 'node:crypto';
import { startLayout, type Layout } from './helpers/layout';

jest.setTimeout(120_000);

/** The ctll_http_requests_total series in a scrape, by their labels. */
function requestSeries(scrape: string): Map<string, number> {
  const series = new Map<string, number>();
  for (const match of scrape.matchAll(/^ctll_http_requests_total(\{[^}]*\}) (\d+)$/gm)) series.set(match[1], Number(match[2]));
  return series;
}

const unmatchedTotal = (series: Map<string, number>) =>
  [...series].filter(([labels]) => labels.includes('route="unmatched"')).reduce((sum, [, value]) => sum + value, 0);

describe('the public edge', () => {
  let layout: Layout;
  const scrape = async () => {
    const res = await fetch(`${layout.relay.metricsUrl}/metrics`);
    expect(res.status).toBe(200);
    return res.text();
  };

  beforeAll(async () => {
    layout = await startLayout();
  });
  afterAll(async () => {
    await layout?.close();
  });

  it('adds no metric series for 10,000 requests to made-up paths, in and outside /api', async () => {
    // Outside /api nothing matches (404); inside, the token check refuses first (401).
    const shapes = [
      () => `/${randomBytes(6).toString('hex')}/${randomBytes(4).toString('hex')}`,
      () => `/api/${randomBytes(6).toString('hex')}/${randomBytes(3).toString('hex')}`,
    ];
    const send = async (i: number) => {
      const res = await fetch(`${layout.relay.url}${shapes[i % shapes.length]()}`);
      await res.arrayBuffer();
      return res.status;
    };
    // Every kind once first, so the baseline already holds their (bounded) series.
    for (let i = 0; i < shapes.length; i += 1) await send(i);
    const before = requestSeries(await scrape());

    const total = 10_000;
    const statuses = new Map<number, number>();
    let next = 0;
    // Modest concurrency over fetch's keep-alive pool.
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < total) {
          const status = await send(next++);
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
        }
      }),
    );
    expect([...statuses.keys()].sort()).toEqual([401, 404]);

    const after = requestSeries(await scrape());
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    // They were all counted, under the one shared label.
    expect(unmatchedTotal(after) - unmatchedTotal(before)).toBe(total);
  });

  it('labels a matched route by its template, not by the path asked for', async () => {
    const user = `templ-${randomBytes(4).toString('hex')}@example.com`;
    const res = await layout.fetchAs(user, '/health');
    await res.arrayBuffer();
    const labels = [...requestSeries(await scrape()).keys()];
    expect(labels.some((l) => l.includes('/api/tunnel/:userId'))).toBe(true);
    expect(labels.some((l) => l.includes(encodeURIComponent(user)) || l.includes(user))).toBe(false);
  });

  it('serves /metrics and /health/details only on the private port', async () => {
    for (const path of ['/metrics', '/health/details']) {
      const open = await fetch(`${layout.relay.url}${path}`);
      expect(open.status).toBe(404);
      expect(await open.text()).not.toContain('ctll_');
    }
    expect(new URL(layout.relay.metricsUrl!).port).not.toBe(String(layout.relay.port));
    expect(await scrape()).toContain('ctll_http_requests_total');
    const details = await fetch(`${layout.relay.metricsUrl}/health/details`);
    expect(details.status).toBe(200);
    expect(await details.json()).toMatchObject({ status: 'ok', checks: { proxies: { ok: true }, database: { ok: true, detail: expect.any(String) } } });
  });

  it('says only "ok" on the public /health', async () => {
    const res = await fetch(`${layout.relay.url}/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });
});
