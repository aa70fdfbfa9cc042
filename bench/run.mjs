// `npm run bench [-- --quick] [-- --only small,bulk] [-- --profile]`
// `npm run build && node bench/run.mjs --whole-frames [--requests N] [--rounds N] [--transports ws,poll]`
// runs the short whole-frames measurement (bench/src/whole-frames.ts) instead of the bench.
// `npm run build && node bench/run.mjs --edge-ab [--base api-backend/dist/main-base.js] [--requests N] [--rounds N]`
// compares two api-backend builds side by side (bench/src/edge-ab.ts).
// `npm run build && node bench/run.mjs --hops [--chat] [--requests N] [--warmup N]` times a lone small request (or a first token)
// step by step from a loopback capture (bench/src/hop-timeline.ts; needs tcpdump and root).
// `npm run build && node bench/run.mjs --delayed [--rtt 20] [--mib 32] [--base-bridge bridge/dist/cli-base.js]`
// moves bulk bodies over bridge links with a round trip in them, both transports (bench/src/delayed-link.ts).
//
// Bundles the TypeScript bench with esbuild (already a devDependency, so a fresh `npm ci` is all
// it needs) into bench/.tmp/build and runs it. Our own workspaces (@ctll/*, tests/helpers) are
// bundled in; npm packages stay external and load from node_modules. The product itself must be
// built first (`npm run build`), because the bench runs the real bundles as child processes.
import { build } from 'esbuild';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.join(root, 'bench/.tmp/build');

for (const bundle of ['api-backend/dist/main.js', 'bridge/dist/cli.js', 'streaming-proxy/dist/streaming-proxy.js']) {
  if (!existsSync(path.join(root, bundle))) {
    console.error(`bench: ${bundle} is missing; run \`npm run build\` first`);
    process.exit(1);
  }
}

/**
 * Keeps npm packages external (they load from node_modules at run time, as the product loads
 * them) and bundles our own code. A package is required by the absolute path it resolves to from
 * the importing file, since workspaces may keep their own node_modules (api-backend/node_modules).
 */
const require = createRequire(import.meta.url);
const externalPackages = {
  name: 'external-packages',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path.startsWith('@ctll/') || args.path.startsWith('node:')) return undefined;
      try {
        return { path: require.resolve(args.path, { paths: [args.resolveDir] }), external: true };
      } catch {
        return { path: args.path, external: true };
      }
    });
  },
};

await build({
  absWorkingDir: root,
  entryPoints: {
    main: 'bench/src/main.ts',
    'whole-frames': 'bench/src/whole-frames.ts',
    'edge-ab': 'bench/src/edge-ab.ts',
    'hop-timeline': 'bench/src/hop-timeline.ts',
    'delayed-link': 'bench/src/delayed-link.ts',
    'llm-server': 'bench/src/children/llm-server.ts',
    'bridge-fleet': 'bench/src/children/bridge-fleet.ts',
    'profiled-proxy': 'bench/src/children/profiled-proxy.ts',
    'gc-hook': 'bench/src/children/gc-hook.ts',
    'gc-proxy': 'bench/src/children/gc-proxy.ts',
  },
  outdir,
  outExtension: { '.js': '.cjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: true,
  logLevel: 'warning',
  plugins: [externalPackages],
});

const wholeFrames = process.argv.includes('--whole-frames');
const edgeAb = process.argv.includes('--edge-ab');
const hops = process.argv.includes('--hops');
const delayed = process.argv.includes('--delayed');
const tools = new Set(['--whole-frames', '--edge-ab', '--hops', '--delayed']);
const args = process.argv.slice(2).filter((arg) => !tools.has(arg));
const entry = wholeFrames ? 'whole-frames.cjs' : edgeAb ? 'edge-ab.cjs' : hops ? 'hop-timeline.cjs' : delayed ? 'delayed-link.cjs' : 'main.cjs';
const child = spawn(process.execPath, ['--enable-source-maps', path.join(outdir, entry), ...args], {
  cwd: root,
  stdio: 'inherit',
});
const forward = (signal) => child.kill(signal);
process.on('SIGINT', forward);
process.on('SIGTERM', forward);
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
