// Bundles each program to one JS file. The streaming-proxy bundle is what its Docker image runs,
// so the image needs no npm install (DESIGN.md §2).
import { build } from 'esbuild';

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  logLevel: 'warning',
  legalComments: 'none',
};

await Promise.all([
  build({ ...common, entryPoints: ['streaming-proxy/src/main.ts'], outfile: 'streaming-proxy/dist/streaming-proxy.js',
    // ws tries these optional native add-ons; the pure-JS fallbacks are what we ship.
    external: ['bufferutil', 'utf-8-validate'] }),
  build({ ...common, entryPoints: ['bridge/src/cli.ts'], outfile: 'bridge/dist/cli.js', banner: { js: '#!/usr/bin/env node' },
    external: ['bufferutil', 'utf-8-validate'] }),
  // api-backend keeps its dependencies in node_modules: dockerode, pg and PGlite load files at run time.
  build({ ...common, entryPoints: ['api-backend/src/main.ts'], outfile: 'api-backend/dist/main.js', packages: 'external' }),
]);
