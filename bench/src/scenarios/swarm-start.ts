/**
 * Scenario 6.1, proxy start on a swarm beside docker: the same start → routable measurement as
 * lifecycle.ts (POST /api/proxy/start, then the relay's health until it routes to the proxy), the
 * same counts, for the `swarm` driver (a one-replica service and an attachable overlay per user)
 * and the `docker` driver (a container and a bridge network per user), one driver after the other
 * on the same engine, so the two rows compare the drivers and not two moments of a shared machine.
 *
 * The swarm arm runs its own api-backend (PROXY_DRIVER=swarm, a scope and subnet pool of its own)
 * on this machine's single-node swarm; the docker arm uses the bench's docker relay.
 */
import { execFileSync } from 'node:child_process';
import type { BenchContext, Row, Scenario } from '../context';
import { startRelayProcess, type RelayProcess } from '../relay';
import { startTimes } from './lifecycle';
import { LABELS } from '../../../api-backend/src/proxy/naming';

export const swarmStart: Scenario = {
  id: 'swarmstart',
  title: '6.1 Proxy start: swarm beside docker',
  notInQuick:
    'swarm services start in seconds, not milliseconds, on a busy engine: its starts alone would take most of a minute, and CI\'s swarm suite already runs the driver (tests/docker/swarm-driver.test.ts)',
  async run(ctx: BenchContext) {
    const { sequential, concurrent } = ctx.sizes.lifecycle;
    if (!ctx.dockerRelay) return notRun(`the docker driver does not run here: ${ctx.dockerUnavailable}`);
    const noSwarm = swarmMissing();
    if (noSwarm) return notRun(noSwarm);

    const rows: Row[] = [];
    const summary: Record<string, number | string> = { sequentialUsers: sequential, concurrentUsers: concurrent };
    const scope = `bench-swarm-${process.pid}`;
    let swarmRelay: RelayProcess | undefined;
    try {
      swarmRelay = await startRelayProcess({ driver: 'swarm', env: { PROXY_SCOPE: scope, PROXY_SUBNET_POOL: '10.215.0.0/16' } });
      for (const [driver, relay] of [
        ['swarm', swarmRelay],
        ['docker', ctx.dockerRelay],
      ] as const) {
        const { s, c, failures, firstFailure } = await startTimes(relay, `start-${driver}`, sequential, concurrent, (m) => ctx.log(`swarmstart: ${driver} driver, ${m}`));
        rows.push(
          { driver, measure: 'start → routable, one at a time', 'p50 ms': s.p50, 'p95 ms': s.p95, 'max ms': s.max, 'met 500 ms / 1 s': s.p50 <= 500 && s.p95 <= 1000, failures, 'first failure': firstFailure ?? null },
          { driver, measure: `start → routable, ${concurrent} users at once`, 'p50 ms': c.p50, 'p95 ms': c.p95, 'max ms': c.max, 'met 500 ms / 1 s': c.p50 <= 500 && c.p95 <= 1000 },
        );
        Object.assign(summary, { [`${driver}SeqP50Ms`]: s.p50, [`${driver}SeqP95Ms`]: s.p95, [`${driver}ConcP50Ms`]: c.p50, [`${driver}ConcP95Ms`]: c.p95, [`${driver}Failures`]: failures });
      }
    } finally {
      await swarmRelay?.close();
      removeSwarmScope(scope);
    }
    return {
      status: 'ok' as const,
      columns: ['driver', 'measure', 'p50 ms', 'p95 ms', 'max ms', 'met 500 ms / 1 s', 'failures', 'first failure'],
      rows,
      notes: [
        `Start: POST /api/proxy/start, then GET /api/tunnel/<user>/health until it reports the proxy running (the relay has called the proxy itself); ${sequential} users one at a time, then ${concurrent} users at once, each stopped afterwards. The swarm arm ran first, then the docker arm, on the same engine.`,
        'swarm: one service per user (one replica, the docker driver\'s hardening and limits) on an attachable overlay network with an explicit subnet, on this machine\'s single-node swarm; api-backend on the host reaches the task over docker_gwbridge. docker: one container on a bridge network per user.',
        'Target (the same as section 6): p50 at most 500 ms and p95 at most 1 s from the start call to routable.',
      ],
      summary,
    };
  },
};

function notRun(reason: string) {
  return { status: 'skipped' as const, reason, columns: [], rows: [], notes: [] };
}

/** Why the swarm driver cannot be measured here, or undefined when this engine is a swarm manager. */
function swarmMissing(): string | undefined {
  try {
    const state = execFileSync('docker', ['info', '--format', '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}'], { encoding: 'utf8', timeout: 15_000 }).trim();
    return state === 'active true' ? undefined : `the engine is not a swarm manager (swarm ${state}; docker swarm init --advertise-addr 127.0.0.1)`;
  } catch {
    return 'no Docker engine answers here (`docker info` failed)';
  }
}

/** Services first (their tasks hold the overlays), then the networks: whatever a failed start left in the scope. */
function removeSwarmScope(scope: string): void {
  const filter = `label=${LABELS.scope}=${scope}`;
  const ids = (args: string[]) => execFileSync('docker', args, { encoding: 'utf8', timeout: 30_000 }).split('\n').filter(Boolean);
  try {
    const services = ids(['service', 'ls', '-q', '--filter', filter]);
    if (services.length > 0) execFileSync('docker', ['service', 'rm', ...services], { stdio: 'ignore', timeout: 60_000 });
    const networks = ids(['network', 'ls', '-q', '--filter', filter]);
    // An overlay is released a moment after its last task ends.
    for (let attempt = 0; networks.length > 0 && attempt < 10; attempt++) {
      try {
        execFileSync('docker', ['network', 'rm', ...networks], { stdio: 'ignore', timeout: 30_000 });
        break;
      } catch {
        execFileSync('sleep', ['1']);
      }
    }
  } catch {
    // nothing left, or the engine went away: nothing more to do from here
  }
}
