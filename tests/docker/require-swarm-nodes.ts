/**
 * Gate for the tests that need the two-node test swarm of scripts/ci/provision-swarm-nodes.sh: two
 * engines apart from the host's, node 1 and node 2 both managers, each labelled `ctll-node=<n>`
 * and holding the base image. Without them a suite is skipped with one line saying why; with
 * CTLL_REQUIRE_SWARM_NODES=1 the same absence fails the suite instead.
 *
 * The engines are asked once, synchronously (jest collects suites synchronously), by a short child
 * process using dockerode, as require-docker.ts does.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { NODE_BASE_IMAGE } from './require-docker';
import { describeIf } from '../helpers/requirement';

/** The nodes' engine sockets, node 1 first (provision-swarm-nodes.sh's defaults). */
export const NODE_SOCKETS = (process.env.CTLL_SWARM_NODE_SOCKETS ?? '/run/ctll-node1.sock,/run/ctll-node2.sock').split(',');

const REPO = path.resolve(__dirname, '../..');

function check(): { ok: true } | { ok: false; reason: string } {
  const script = `
    const Docker = require('dockerode');
    const sockets = ${JSON.stringify(NODE_SOCKETS)};
    const fail = (why) => { console.error(why); process.exit(1); };
    (async () => {
      const infos = [];
      for (const socketPath of sockets) {
        const engine = new Docker({ socketPath });
        try { infos.push(await engine.info()); } catch (error) { fail('no engine answers on ' + socketPath + ' (' + (error.code || error.message) + ')'); }
        await engine.getImage(${JSON.stringify(NODE_BASE_IMAGE)}).inspect().catch(() => fail('image ${NODE_BASE_IMAGE} is not loaded on ' + socketPath));
      }
      infos.forEach((info, i) => {
        if (!info.Swarm || info.Swarm.LocalNodeState !== 'active' || !info.Swarm.ControlAvailable) fail('node ' + (i + 1) + ' is not a swarm manager (provision-swarm-nodes.sh promotes it)');
      });
      const nodes = await new Docker({ socketPath: sockets[0] }).listNodes();
      for (let n = 1; n <= sockets.length; n += 1) {
        const node = nodes.find((one) => one.Spec && one.Spec.Labels && one.Spec.Labels['ctll-node'] === String(n));
        if (!node || node.Status.State !== 'ready') fail('no ready swarm node labelled ctll-node=' + n);
        if (node.ID !== infos[n - 1].Swarm.NodeID) fail('the node labelled ctll-node=' + n + ' is not the engine on ' + sockets[n - 1]);
      }
      process.exit(0);
    })().catch((error) => fail(String(error && error.message)));`;
  const probe = spawnSync(process.execPath, ['-e', script], { cwd: REPO, encoding: 'utf8', timeout: 15_000 });
  if (probe.status === 0) return { ok: true };
  const reason = (probe.stderr || probe.error?.message || 'the check did not finish').trim();
  return { ok: false, reason: `${reason} (scripts/ci/provision-swarm-nodes.sh builds the two-node swarm)` };
}

/** `describe` on the two-node swarm; otherwise a skip with one line, or a failure under CTLL_REQUIRE_SWARM_NODES=1. */
export function describeSwarmNodes(title: string, body: () => void): void {
  const state = check();
  describeIf({ needs: 'the two-node test swarm', requireVar: 'CTLL_REQUIRE_SWARM_NODES' }, state.ok ? undefined : state.reason, title, body);
}
