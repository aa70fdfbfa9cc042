/**
 * Gate for the tests that need a swarm manager (PROXY_DRIVER=swarm) on top of what
 * require-docker.ts asks. Without one a suite is skipped with one line saying why; with
 * CTLL_REQUIRE_DOCKER=1 (what .ci/run sets, after scripts/ci/provision-swarm.sh) it fails instead.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { dockerVerdict } from './require-docker';
import { describeIf } from '../helpers/requirement';

const REPO = path.resolve(__dirname, '../..');

function check(): { ok: true } | { ok: false; reason: string } {
  const docker = dockerVerdict();
  if (!docker.ok) return docker;
  const script = `
    new (require('dockerode'))().info().then((info) => {
      const swarm = info.Swarm || {};
      if (swarm.LocalNodeState === 'active' && swarm.ControlAvailable) process.exit(0);
      console.error('the engine is not a swarm manager (swarm ' + (swarm.LocalNodeState || 'unknown') + '; scripts/ci/provision-swarm.sh or docker swarm init --advertise-addr 127.0.0.1)');
      process.exit(1);
    }, (error) => { console.error('no Docker engine answers (' + (error.code || error.message) + ')'); process.exit(1); });`;
  const probe = spawnSync(process.execPath, ['-e', script], { cwd: REPO, encoding: 'utf8', timeout: 10_000 });
  if (probe.status === 0) return { ok: true };
  return { ok: false, reason: (probe.stderr || probe.error?.message || 'swarm check did not finish').trim() };
}

/** `describe` on a swarm manager; otherwise a skip with one line, or a failure under CTLL_REQUIRE_DOCKER=1. */
export function describeSwarm(title: string, body: () => void): void {
  const state = check();
  describeIf({ needs: 'a swarm manager and the proxy image', requireVar: 'CTLL_REQUIRE_DOCKER' }, state.ok ? undefined : state.reason, title, body);
}
