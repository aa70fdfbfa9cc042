/**
 * The issue's targets, checked against a run's figures. Each target says what was measured and
 * whether it was met; `met: null` means it could not be measured here (the reason is given).
 * Peers are compared row by row: lower is better for latency and memory, higher for throughput.
 */
import type { Cell, RouteStatus, Row, ScenarioResult } from './context';

export interface TargetResult {
  id: string;
  target: string;
  measured: string;
  met: boolean | null;
}

const num = (cell: Cell | undefined): number => (typeof cell === 'number' ? cell : Number.NaN);
const firstLine = (text: string) => text.split('\n').find((line) => line.trim())?.trim() ?? text;
/** MiB (what the bench measures) in MB (10^6 bytes), the unit some of the issue's targets are written in. */
const megabytes = (mib: number) => (mib * 1024 * 1024) / 1e6;
const fmt = (value: number, unit = '', digits = 2) => (Number.isFinite(value) ? `${Number(value.toFixed(digits))}${unit}` : 'n/a');

export function evaluateTargets(scenarios: ScenarioResult[], routes: RouteStatus[]): TargetResult[] {
  const get = (id: string) => scenarios.find((s) => s.id === id && s.status === 'ok');
  const rowsOf = (id: string, filter: (row: Row) => boolean = () => true) => (get(id)?.rows ?? []).filter(filter);
  const relayIds = routes.filter((r) => r.kind === 'relay' && r.status === 'measured').map((r) => r.id);
  const out: TargetResult[] = [];
  const notMeasured = (id: string, target: string, why: string) => out.push({ id, target, measured: `not measured: ${why}`, met: null });

  // 1. Small requests.
  for (const route of relayIds) {
    const row = rowsOf('small', (r) => r.route === route)[0];
    if (!row) {
      notMeasured(`small-latency ${route}`, `${route}: adds at most 1 ms p50 to a small request`, 'scenario did not run');
      continue;
    }
    const added = num(row['added p50 ms']);
    out.push({ id: `small-latency ${route}`, target: `${route}: adds at most 1 ms p50 to a small request`, measured: `+${fmt(added, ' ms', 3)} p50 (p99 +${fmt(num(row['added p99 ms']), ' ms', 3)})`, met: added <= 1 });
    const r = num(row['req/s ratio']);
    out.push({ id: `small-throughput ${route}`, target: `${route}: keeps at least 50 % of direct throughput (32 connections)`, measured: `${fmt(r * 100, ' %', 0)} (${row['req/s (32 conns)']} req/s)`, met: r >= 0.5 });
  }

  // 2. Streaming.
  for (const route of relayIds) {
    const row = rowsOf('streaming', (r) => r.route === route)[0];
    if (!row) continue;
    const p99 = num(row['token delay p99 ms']);
    out.push({ id: `token-delay ${route}`, target: `${route}: token delivery delay p99 at most 5 ms`, measured: `${fmt(p99, ' ms', 2)} (p50 ${fmt(num(row['token delay p50 ms']), ' ms', 2)})`, met: p99 <= 5 });
  }

  // 3. Bulk.
  for (const route of relayIds) {
    const rows = rowsOf('bulk', (r) => r.route === route);
    if (rows.length === 0) continue;
    const ratios = rows.map((r) => `${r.direction} ${fmt(num(r['ratio to direct']) * 100, ' %', 0)}`);
    out.push({ id: `bulk-throughput ${route}`, target: `${route}: bulk at least 50 % of direct throughput`, measured: ratios.join(', '), met: rows.every((r) => num(r['ratio to direct']) >= 0.5) });
    const growth = rows.flatMap((r) => Object.entries(r).filter(([k]) => k.endsWith('RSS growth MiB')).map(([k, v]) => [k.replace(' RSS growth MiB', ''), num(v), r.direction] as const));
    const worst = growth.reduce((a, b) => (b[1] > a[1] ? b : a), ['none', -Infinity, ''] as readonly [string, number, Cell]);
    out.push({
      id: `bulk-memory ${route}`,
      target: `${route}: at most 64 MiB RSS growth in any process during a bulk transfer`,
      measured: `largest: ${worst[0]} +${fmt(worst[1], ' MiB', 1)} (${worst[2]})`,
      met: growth.length > 0 && growth.every(([, v]) => v <= 64),
    });
  }

  // 4. Scale.
  const scale = get('scale');
  if (scale?.summary) {
    const s = scale.summary;
    const errors = num(s.errorsAt1000PerMin);
    out.push({
      id: 'scale-1000-per-minute',
      target: `${s.users} bridges and 1,000 requests per minute without errors`,
      measured: `${errors} errors, p99 ${fmt(num(s.p99At1000PerMinMs), ' ms', 0)}; knee ${s.relayKneeAboveLadder ? 'above ' : ''}${s.relayKneeRps} req/s (direct ${s.directKneeAboveLadder ? 'above ' : ''}${s.directKneeRps})`,
      met: errors === 0 && num(s.users) >= 100,
    });
  } else {
    notMeasured('scale-1000-per-minute', '100 bridges and 1,000 requests per minute', scenarios.find((x) => x.id === 'scale')?.reason ?? 'scenario did not run');
  }

  // 5. Polling.
  const polling = get('polling')?.summary;
  if (polling) {
    const p50 = num(polling.pollP50Ms);
    out.push({ id: 'poll-delivery', target: 'polling delivery at most 10 ms p50', measured: `${fmt(p50, ' ms', 2)} p50, ${fmt(num(polling.pollP99Ms), ' ms', 2)} p99`, met: p50 <= 10 });
  }

  // 6. Lifecycle.
  const life = get('lifecycle')?.summary;
  if (life) {
    for (const driver of ['docker', 'process']) {
      if (life[`${driver}SeqP50Ms`] === undefined) {
        if (driver === 'docker') {
          const why = (get('lifecycle')?.rows.find((r) => r.driver === 'docker')?.note as string | undefined) ?? 'docker driver unavailable';
          notMeasured('proxy-start docker', 'docker: proxy start p50 at most 500 ms, p95 at most 1 s', why.replace(/^not measured: /, ''));
          notMeasured('proxy-capacity docker', 'at least 200 concurrent proxies on this machine', why.replace(/^not measured: /, ''));
        }
        continue;
      }
      const p50 = Math.max(num(life[`${driver}SeqP50Ms`]), num(life[`${driver}ConcP50Ms`]));
      const p95 = Math.max(num(life[`${driver}SeqP95Ms`]), num(life[`${driver}ConcP95Ms`]));
      out.push({
        id: `proxy-start ${driver}`,
        target: `${driver}: proxy start p50 at most 500 ms, p95 at most 1 s`,
        measured: `one at a time ${fmt(num(life[`${driver}SeqP50Ms`]), '', 0)}/${fmt(num(life[`${driver}SeqP95Ms`]), ' ms', 0)}, ${life.concurrentUsers ?? 20} at once ${fmt(num(life[`${driver}ConcP50Ms`]), '', 0)}/${fmt(num(life[`${driver}ConcP95Ms`]), ' ms', 0)} (p50/p95)`,
        met: p50 <= 500 && p95 <= 1000,
      });
      if (driver === 'docker') {
        const held = num(life.dockerCapacity);
        out.push({ id: 'proxy-capacity docker', target: 'at least 200 concurrent proxies on this machine', measured: `${held} (${life.dockerCapacityStoppedBecause})`, met: held >= 200 });
      }
    }
  }

  // 6.1 Proxy start on a swarm, beside docker in the same scenario (issue 18): the same target as section 6.
  const swarm = get('swarmstart')?.summary;
  if (swarm) {
    for (const driver of ['swarm', 'docker']) {
      const p50 = Math.max(num(swarm[`${driver}SeqP50Ms`]), num(swarm[`${driver}ConcP50Ms`]));
      const p95 = Math.max(num(swarm[`${driver}SeqP95Ms`]), num(swarm[`${driver}ConcP95Ms`]));
      out.push({
        id: `proxy-start ${driver} (6.1)`,
        target: `${driver} (6.1, side by side): proxy start p50 at most 500 ms, p95 at most 1 s`,
        measured: `one at a time ${fmt(num(swarm[`${driver}SeqP50Ms`]), '', 0)}/${fmt(num(swarm[`${driver}SeqP95Ms`]), ' ms', 0)}, ${swarm.concurrentUsers} at once ${fmt(num(swarm[`${driver}ConcP50Ms`]), '', 0)}/${fmt(num(swarm[`${driver}ConcP95Ms`]), ' ms', 0)} (p50/p95)`,
        met: p50 <= 500 && p95 <= 1000,
      });
    }
  } else {
    const skipped = scenarios.find((x) => x.id === 'swarmstart');
    if (skipped) notMeasured('proxy-start swarm (6.1)', 'swarm (6.1, side by side): proxy start p50 at most 500 ms, p95 at most 1 s', firstLine(skipped.reason ?? 'scenario did not run'));
  }

  // 4.1 Replicas (issue 18): no target of its own, the two knees side by side.
  const reps = get('replicas')?.summary;
  if (reps) {
    const knee = (rps: Cell | undefined, above: Cell | undefined) => `${above ? 'above ' : ''}${rps} req/s`;
    out.push({
      id: 'replicas-knee',
      target: `${reps.users} bridges: knee with one api-backend against two replicas behind nginx`,
      measured: `one ${knee(reps.oneReplicaKneeRps, reps.oneReplicaKneeAboveLadder)}, two ${knee(reps.twoReplicasKneeRps, reps.twoReplicasKneeAboveLadder)} (same 2 cores; see 4.1)`,
      met: null,
    });
  }

  // 6b. Idle footprint (issue 16): api-backend on PGlite under 150 MB resident, a process under 40 MB
  // resident, a container under 20 MiB as its cgroup counts it. The issue states them as resident
  // memory, so that is what decides; private and PSS are given beside it, never in its place. The
  // bench measures MiB; a target the issue wrote in MB is decided in MB (10^6 bytes), the stricter
  // reading, and the row shows both, so a figure between the two never passes on a unit.
  const foot = get('footprint');
  if (foot?.summary) {
    const f = foot.summary;
    const apiTarget = 'api-backend on the embedded default (PGlite): idle under 150 MB resident';
    const apiRss = num(f.apiBackendIdleMb);
    if (Number.isFinite(apiRss)) {
      // Runs before 2026-12-02 measured only 5 s after /health, and have no start-up figure.
      const startup = num(f.apiBackendStartupMb);
      const early = Number.isFinite(startup) ? `; ${fmt(startup, ' MiB', 1)} 5 s after /health, before start-up's garbage was collected` : '';
      const measured = `${fmt(apiRss, ' MiB', 1)} VmRSS = ${fmt(megabytes(apiRss), ' MB', 1)} (peak ${fmt(num(f.apiBackendPeakMb), ' MiB', 1)}, private ${fmt(num(f.apiBackendPrivateMb), ' MiB', 1)}${early})`;
      out.push({ id: 'api-backend-idle-memory', target: apiTarget, measured, met: megabytes(apiRss) < 150 });
    } else {
      const why = (foot.rows.find((r) => typeof r.measure === 'string' && r.measure.startsWith('api-backend') && r.value === null)?.note as string | undefined) ?? 'this footprint run has no api-backend row';
      notMeasured('api-backend-idle-memory', apiTarget, why.replace(/^not measured: /, ''));
    }
    const bare = `bare node ${fmt(num(f.bareNodeRssMb), ' MiB', 1)} resident, ${fmt(num(f.bareNodePrivateMb), ' MiB', 1)} private`;
    if (f.processIdleMb !== undefined) {
      const rss = num(f.processIdleMb);
      const pss = f.processIdlePssMb !== undefined ? `, PSS ${fmt(num(f.processIdlePssMb), ' MiB', 1)}` : '';
      const measured = `${fmt(rss, ' MiB', 1)} = ${fmt(megabytes(rss), ' MB', 1)} (private ${fmt(num(f.processIdlePrivateMb), ' MiB', 1)}${pss}; ${bare})`;
      out.push({ id: 'proxy-idle-memory process', target: 'process: idle proxy under 40 MB resident', measured, met: megabytes(rss) < 40 });
    }
    if (f.dockerIdleMb !== undefined) {
      const mem = num(f.dockerIdleMb);
      out.push({ id: 'proxy-idle-memory docker', target: 'docker: idle proxy container under 20 MiB', measured: fmt(mem, ' MiB', 1), met: mem < 20 });
    } else {
      const why = (foot.rows.find((r) => r.driver === 'docker')?.note as string | undefined) ?? 'docker driver unavailable';
      notMeasured('proxy-idle-memory docker', 'docker: idle proxy container under 20 MiB', why.replace(/^not measured: /, ''));
    }
  }

  // 8. Memory per open stream: what the proxy holds per stalled stream, against the protocol's bound.
  const streams = get('streams');
  if (streams?.summary) {
    const bound = num(streams.summary.boundMiBPerStreamPerDirection);
    // Each row's own bound: older results have none, and were measured against the fixed window.
    const held = streams.rows.map((r) => [r.route, r.streams, num(r['proxy held MiB/stream']), r['proxy bound MiB/stream'] === undefined ? bound : num(r['proxy bound MiB/stream'])] as const);
    out.push({
      id: 'streams-memory',
      target: `streaming-proxy holds at most one window plus one frame (${fmt(bound, ' MiB', 3)}) per stalled download, plus on the WebSocket its share of the grown windows' budget`,
      measured: held.map(([route, n, mib, most]) => `${route} ×${n}: ${fmt(mib, ' MiB', 2)} (bound ${fmt(most, ' MiB', 2)})`).join(', '),
      met: held.length > 0 && held.every(([, , mib, most]) => mib <= most),
    });
  }

  // Peers, row by row, against the first relay route (WebSocket, process driver).
  const primary = relayIds[0];
  const peers = routes.filter((r) => r.kind === 'peer');
  for (const peer of peers) {
    const label = `beat ${peer.id}`;
    if (peer.status !== 'measured' || !primary) {
      notMeasured(`peer ${peer.id}`, `${label} on every row where it can be measured`, peer.reason ?? 'unavailable');
      continue;
    }
    // `floor`: figures below it are within the measurement's noise and compare nothing.
    const comparisons: Array<{ row: string; ours: number; theirs: number; lowerIsBetter: boolean; unit: string; floor?: number }> = [];
    const pick = (scenario: string, route: string, column: string, filter: (r: Row) => boolean = () => true) =>
      num(rowsOf(scenario, (r) => r.route === route && filter(r))[0]?.[column]);
    comparisons.push({ row: 'small request p50', ours: pick('small', primary, 'p50 ms'), theirs: pick('small', peer.id, 'p50 ms'), lowerIsBetter: true, unit: ' ms' });
    comparisons.push({ row: 'small request p99', ours: pick('small', primary, 'p99 ms'), theirs: pick('small', peer.id, 'p99 ms'), lowerIsBetter: true, unit: ' ms' });
    comparisons.push({ row: 'requests/s, 32 connections', ours: pick('small', primary, 'req/s (32 conns)'), theirs: pick('small', peer.id, 'req/s (32 conns)'), lowerIsBetter: false, unit: '' });
    comparisons.push({ row: 'token delay p99', ours: pick('streaming', primary, 'token delay p99 ms'), theirs: pick('streaming', peer.id, 'token delay p99 ms'), lowerIsBetter: true, unit: ' ms' });
    comparisons.push({ row: 'time to first token p50', ours: pick('streaming', primary, 'first token p50 ms'), theirs: pick('streaming', peer.id, 'first token p50 ms'), lowerIsBetter: true, unit: ' ms' });
    comparisons.push({ row: 'bulk download', ours: pick('bulk', primary, 'MiB/s', (r) => r.direction === 'download'), theirs: pick('bulk', peer.id, 'MiB/s', (r) => r.direction === 'download'), lowerIsBetter: false, unit: ' MiB/s' });
    comparisons.push({ row: 'bulk upload', ours: pick('bulk', primary, 'MiB/s', (r) => r.direction === 'upload'), theirs: pick('bulk', peer.id, 'MiB/s', (r) => r.direction === 'upload'), lowerIsBetter: false, unit: ' MiB/s' });
    const idleRows = get('idle')?.summary;
    const theirIdle = peer.id === 'ssh -R' ? idleRows?.sshTunnelKiB : idleRows?.localtunnelTunnelKiB;
    comparisons.push({ row: 'memory per extra idle tunnel', ours: num(idleRows?.relayTunnelKiB), theirs: num(theirIdle), lowerIsBetter: true, unit: ' KiB', floor: 1 });
    for (const c of comparisons) {
      if (!Number.isFinite(c.ours) || !Number.isFinite(c.theirs)) continue;
      if (c.floor !== undefined && Math.min(c.ours, c.theirs) < c.floor) {
        notMeasured(`peer ${peer.id}: ${c.row}`, `${label}: ${c.row}`, `ours ${fmt(c.ours, c.unit)} vs ${fmt(c.theirs, c.unit)}; below ${fmt(c.floor, c.unit)} is within this measurement's noise`);
        continue;
      }
      const won = c.lowerIsBetter ? c.ours <= c.theirs : c.ours >= c.theirs;
      out.push({ id: `peer ${peer.id}: ${c.row}`, target: `${label}: ${c.row}`, measured: `ours ${fmt(c.ours, c.unit)} vs ${fmt(c.theirs, c.unit)}`, met: won });
    }
  }
  return out;
}
