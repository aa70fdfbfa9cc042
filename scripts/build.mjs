// Bundles each program to one JS file. The streaming-proxy bundle is what its Docker image runs,
// so the image needs no npm install. `node scripts/build.mjs bridge` builds only the programs named
// (the bridge's npm pack and single executable need only theirs).
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { buildConsole } from './build-console.mjs';

const apiDeps = Object.keys(JSON.parse(readFileSync('api-backend/package.json', 'utf8')).dependencies)
  .filter((name) => !name.startsWith('@ctll/'));

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  logLevel: 'warning',
  legalComments: 'none',
};

/**
 * zod re-exports its 40-odd message translations (`z.locales`) from its entry point, and each one
 * runs at load: 290 KiB of the proxy's bundle and about 7 MiB of every idle proxy's memory
 * (bench/RESULTS.md, footprint). The proxy only ever reports in English, which zod imports for
 * itself (classic/schemas.js), so `z.locales` is cut down to English in the proxy's bundle.
 */
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      /[\\/]node_modules[\\/]zod[\\/]/.test(args.importer) ? { path: 'zod-locales', namespace: 'zod-english-only', pluginData: args.resolveDir } : undefined);
    b.onLoad({ filter: /.*/, namespace: 'zod-english-only' }, (args) => ({
      contents: "export { default as en } from '../locales/en.js';",
      resolveDir: args.pluginData,
      loader: 'js',
    }));
  },
};

const only = process.argv.slice(2);
const wanted = (program, options) => (only.length === 0 || only.includes(program) ? build(options) : Promise.resolve());

const results = await Promise.allSettled([
  // One proxy runs per user: V8 keeps the whole source in its heap, so the proxy is shipped without
  // whitespace and comments (about 1.5 MB less per proxy); names stay, for readable stack traces.
  wanted('streaming-proxy', { ...common, minifyWhitespace: true, minifySyntax: true, entryPoints: ['streaming-proxy/src/main.ts'], outfile: 'streaming-proxy/dist/streaming-proxy.js',
    // ws tries these optional native add-ons; the pure-JS fallbacks are what we ship.
    external: ['bufferutil', 'utf-8-validate'], plugins: [zodEnglishOnly] }),
  wanted('bridge', { ...common, entryPoints: ['bridge/src/cli.ts'], outfile: 'bridge/dist/cli.js', banner: { js: '#!/usr/bin/env node' },
    external: ['bufferutil', 'utf-8-validate'] }),
  // api-backend keeps its npm dependencies in node_modules (dockerode, pg and PGlite load files at run
  // time); our own workspaces are bundled in.
  wanted('api-backend', { ...common, entryPoints: ['api-backend/src/main.ts'], outfile: 'api-backend/dist/main.js',
    external: [...apiDeps, 'bufferutil', 'utf-8-validate'] }),
  wanted('api-backend', { ...common, entryPoints: ['api-backend/src/token-cli.ts'], outfile: 'api-backend/dist/token.js',
    external: [...apiDeps, 'jsonwebtoken'] }),
  // The web console's static files, served by api-backend at `/`.
  only.length === 0 || only.includes('console') ? buildConsole() : Promise.resolve(),
]);

// Every bundle is attempted, so one broken program does not hide the others' errors.
const failed = results.filter((r) => r.status === 'rejected');
if (failed.length > 0) {
  for (const f of failed) console.error(f.reason.message);
  process.exit(1);
}
