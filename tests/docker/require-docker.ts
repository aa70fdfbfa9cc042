/**
 * Gate for the tests that need a real Docker engine and the proxy image. Without them a suite is
 * skipped with one line saying why, so `npm test` on a laptop without Docker stays green; with
 * CTLL_REQUIRE_DOCKER=1 (what .ci/run sets) the same absence fails the suite instead.
 *
 * Jest collects suites synchronously, so the engine is asked once, synchronously, by a short
 * child process using the same dockerode (and DOCKER_HOST) the driver uses.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describeIf } from '../helpers/requirement';

export const PROXY_IMAGE = process.env.PROXY_IMAGE ?? 'ctll/streaming-proxy:latest';
/** The registry-less base image (scripts/docker-base-image.sh): node, no shell. Used for probe containers. */
export const NODE_BASE_IMAGE = process.env.NODE_BASE_IMAGE ?? 'ctll/node-base:local';

const REPO = path.resolve(__dirname, '../..');

let verdict: { ok: true } | { ok: false; reason: string } | undefined;

function check(): { ok: true } | { ok: false; reason: string } {
  const script = `
    const docker = new (require('dockerode'))();
    const need = ${JSON.stringify([PROXY_IMAGE, NODE_BASE_IMAGE])};
    docker.ping()
      .then(() => Promise.all(need.map((image) => docker.getImage(image).inspect().then(() => null, () => image))))
      .then((missing) => {
        missing = missing.filter(Boolean);
        if (missing.length === 0) process.exit(0);
        console.error('image ' + missing.join(', ') + ' not built (npm run docker:base-image; BASE_IMAGE=ctll/node-base:local npm run docker:build)');
        process.exit(2);
      }, (error) => { console.error('no Docker engine answers (' + (error.code || error.message) + ')'); process.exit(1); });`;
  const probe = spawnSync(process.execPath, ['-e', script], { cwd: REPO, encoding: 'utf8', timeout: 10_000 });
  if (probe.status === 0) return { ok: true };
  return { ok: false, reason: (probe.stderr || probe.error?.message || 'Docker check did not finish').trim() };
}

export function dockerVerdict(): { ok: true } | { ok: false; reason: string } {
  return (verdict ??= check());
}

/** `describe` when Docker is usable; otherwise a skip with one line, or a failure under CTLL_REQUIRE_DOCKER=1. */
export function describeDocker(title: string, body: () => void): void {
  const state = dockerVerdict();
  describeIf({ needs: 'a Docker engine and the proxy image', requireVar: 'CTLL_REQUIRE_DOCKER' }, state.ok ? undefined : state.reason, title, body);
}
