/**
 * Bundles swarm-container-mode.entry.ts for a run inside a container or a swarm task: overlay
 * addresses are reachable only from a container on the overlay, never from the host the tests run
 * on. The bundle lands under the repository's node_modules, where node inside the container finds
 * api-backend's dependencies (the repository is bind-mounted at the same path).
 */
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

export const REPO = path.resolve(__dirname, '../..');

/** Writes the bundle; `dir` is the caller's to remove. */
export async function bundleSwarmEntry(): Promise<{ dir: string; entry: string }> {
  const dir = fs.mkdtempSync(path.join(REPO, 'node_modules', '.ctll-swarm-'));
  const entry = path.join(dir, 'entry.js');
  const apiDeps = Object.keys(JSON.parse(fs.readFileSync(path.join(REPO, 'api-backend/package.json'), 'utf8')).dependencies as Record<string, string>);
  await build({
    entryPoints: [path.join(__dirname, 'swarm-container-mode.entry.ts')],
    outfile: entry,
    bundle: true,
    platform: 'node',
    target: 'node20',
    logLevel: 'warning',
    external: [...apiDeps.filter((name) => !name.startsWith('@ctll/')), 'bufferutil', 'utf-8-validate'],
  });
  return { dir, entry };
}

/** The entry's one JSON line (its result, or `{error}`), from everything it printed. */
export function resultOf(output: string): Record<string, unknown> {
  return JSON.parse(output.split('\n').filter((line) => line.trim().startsWith('{')).pop() ?? '{}') as Record<string, unknown>;
}
