/**
 * The bench's idle-footprint targets (bench/src/targets.ts) and how RESULTS.md shows them
 * (bench/src/report.ts): the issue states each target in resident memory, so resident memory
 * decides; private memory and PSS are shown beside it and never turn a miss into a pass.
 */
import type { Cell, ScenarioResult } from '../bench/src/context';
import { markdown } from '../bench/src/report';
import type { Results } from '../bench/src/results';
import { evaluateTargets } from '../bench/src/targets';

function footprintRun(summary: Record<string, Cell>, rows: ScenarioResult['rows'] = []): ScenarioResult {
  return { id: 'footprint', title: '6b. Idle proxy footprint', status: 'ok', columns: ['driver', 'measure', 'value', 'note'], rows, notes: [], summary };
}

const IDLE = {
  apiBackendIdleMb: 144.2,
  apiBackendPeakMb: 145.9,
  apiBackendPrivateMb: 98.1,
  bareNodeRssMb: 39.4,
  bareNodePrivateMb: 6.2,
  bareNodePssMb: 9.1,
  processIdleMb: 53.7,
  processIdlePrivateMb: 17.2,
  processIdlePssMb: 22.5,
  dockerIdleMb: 14.3,
};

const target = (scenario: ScenarioResult, id: string) => evaluateTargets([scenario], []).find((t) => t.id === id);

describe('the bench footprint targets', () => {
  it('misses the process-proxy target on resident memory even when its PSS is under 40 MiB, and shows PSS and private beside it', () => {
    const result = target(footprintRun(IDLE), 'proxy-idle-memory process');
    expect(result?.met).toBe(false);
    expect(result?.measured).toContain('53.7 MiB');
    expect(result?.measured).toContain('private 17.2 MiB');
    expect(result?.measured).toContain('PSS 22.5 MiB');
  });

  it('meets the api-backend target when it idles under 150 on PGlite, giving its peak', () => {
    const result = target(footprintRun(IDLE), 'api-backend-idle-memory');
    expect(result?.met).toBe(true);
    expect(result?.measured).toContain('144.2 MiB VmRSS');
    expect(result?.measured).toContain('peak 145.9 MiB');
  });

  it('misses the api-backend target when it idles at 150 or more', () => {
    expect(target(footprintRun({ ...IDLE, apiBackendIdleMb: 813 }), 'api-backend-idle-memory')?.met).toBe(false);
    expect(target(footprintRun({ ...IDLE, apiBackendIdleMb: 150 }), 'api-backend-idle-memory')?.met).toBe(false);
  });

  it('says why the api-backend target was not measured when its start failed, instead of passing or failing it', () => {
    const { apiBackendIdleMb: _omitted, ...withoutApi } = IDLE;
    const rows = [{ driver: 'none', measure: 'api-backend, embedded PGlite, idle', value: null, note: 'not measured: api-backend exited (code 1)' }];
    const result = target(footprintRun(withoutApi, rows), 'api-backend-idle-memory');
    expect(result).toEqual({ id: 'api-backend-idle-memory', target: expect.stringContaining('150 MB'), measured: 'not measured: api-backend exited (code 1)', met: null });
  });

  it('renders the api-backend and PSS rows in RESULTS.md, with the process miss explained', () => {
    const rows = [
      { driver: 'none', measure: 'api-backend, embedded PGlite, idle: resident (VmRSS, MiB)', value: 144.2, note: 'DATABASE_URL unset' },
      { driver: 'process', measure: 'idle proxy process: proportional (PSS, MiB, mean)', value: 22.5, note: '5 processes' },
    ];
    const scenario = footprintRun(IDLE, rows);
    const results: Results = {
      schema: 1,
      mode: 'full',
      date: '2026-12-01T05:00:00.000Z',
      durationS: 150,
      machine: { cpu: 'test', cores: 2, memoryGiB: 24, os: 'Linux', node: 'v20', commit: 'abc', loadAverage: { start: 1.5, end: 2 } },
      routes: [],
      scenarios: [scenario],
      targets: evaluateTargets([scenario], []),
    };
    const md = markdown(results, '/nonexistent');
    expect(md).toContain('| none | api-backend, embedded PGlite, idle: resident (VmRSS, MiB) | 144.2 | DATABASE_URL unset |');
    expect(md).toContain('| process | idle proxy process: proportional (PSS, MiB, mean) | 22.5 | 5 processes |');
    expect(md).toContain('| api-backend on the embedded default (PGlite): idle under 150 MB resident | 144.2 MiB VmRSS (peak 145.9 MiB, private 98.1 MiB) | yes |');
    expect(md).toMatch(/\| process: idle proxy under 40 MiB resident \| 53\.7 MiB \(private 17\.2 MiB, PSS 22\.5 MiB; [^|]*\| \*\*no\*\* \|/);
    expect(md).toContain('PSS (private plus a share of node');
  });
});
