/**
 * The shipped monitoring (deploy/prometheus) as an operator loads it: promtool accepts the alert
 * rules and the scrape config, the rules' own unit tests (alerts.test.yml) fire each alert on the
 * series that should trip it, and every metric a rule names is one the relay really exports.
 * promtool comes with Debian's `prometheus` package (scripts/ci/provision-tools.sh); without it the
 * suite is skipped, and under CTLL_REQUIRE_PROMTOOL=1 (CI) it fails instead.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Metrics } from '../api-backend/src/metrics';
import { describeIf } from './helpers/requirement';

const DIR = path.resolve(__dirname, '../deploy/prometheus');
const PROMTOOL = process.env.PROMTOOL_BIN ?? 'promtool';

function promtool(...args: string[]): { status: number | null; output: string } {
  const run = spawnSync(PROMTOOL, args, { cwd: DIR, encoding: 'utf8', timeout: 30_000 });
  return { status: run.status, output: `${run.stdout ?? ''}${run.stderr ?? ''}${run.error ? run.error.message : ''}` };
}

const missing = promtool('--version').status === 0 ? undefined : `${PROMTOOL} not found (apt-get install prometheus, or set PROMTOOL_BIN)`;

describeIf({ needs: 'promtool', requireVar: 'CTLL_REQUIRE_PROMTOOL' }, missing, 'shipped Prometheus rules and scrape config', () => {
  it('promtool accepts the alert rules', () => {
    const result = promtool('check', 'rules', 'alerts.yml');
    expect(result.output).toContain('SUCCESS');
    expect(result.status).toBe(0);
  });

  it('each alert fires on the series that should trip it and stays quiet on ordinary traffic', () => {
    const result = promtool('test', 'rules', 'alerts.test.yml');
    expect(result.output).toContain('SUCCESS');
    expect(result.status).toBe(0);
  });

  it('promtool accepts the scrape config with its rule file', () => {
    const result = promtool('check', 'config', 'prometheus.yml');
    expect(result.output).toContain('SUCCESS');
    expect(result.status).toBe(0);
  });

  it('a broken rule is refused (the check above is no rubber stamp)', () => {
    const broken = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-rules-')), 'broken.yml');
    fs.writeFileSync(broken, fs.readFileSync(path.join(DIR, 'alerts.yml'), 'utf8').replace('sum(increase(ctll_proxy_start_failures_total[10m])) >= 3', 'sum(increase(ctll_proxy_start_failures_total[10m]) >= 3'));
    const result = promtool('check', 'rules', broken);
    expect(result.status).not.toBe(0);
  });
});

describe('alert rules name real metrics', () => {
  it('every ctll_ metric in the rules and the dashboard is exported by api-backend', async () => {
    const exported = new Set((await new Metrics(() => 0, 10).registry.getMetricsAsJSON()).map((metric) => metric.name));
    const texts = [path.join(DIR, 'alerts.yml'), path.resolve(__dirname, '../deploy/grafana/relay-dashboard.json')].map((file) => fs.readFileSync(file, 'utf8'));
    const named = new Set(texts.flatMap((text) => text.match(/\bctll_[a-z0-9_]+/g) ?? []).map((name) => name.replace(/_(bucket|sum|count)$/, '')));
    expect(named.size).toBeGreaterThan(5);
    expect([...named].filter((name) => !exported.has(name))).toEqual([]);
  });
});
