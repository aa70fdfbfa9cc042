// The web console (console/): one browser bundle and two static files in console/dist, which
// api-backend serves at `/`. Values come from protocol's own files (not its index, which would
// pull zod into the browser); types are erased.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';

export async function buildConsole() {
  mkdirSync('console/dist', { recursive: true });
  await build({
    entryPoints: ['console/src/main.ts'],
    outfile: 'console/dist/app.js',
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome110', 'firefox110', 'safari16'],
    minify: true,
    sourcemap: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  for (const file of ['index.html', 'app.css']) copyFileSync(`console/static/${file}`, `console/dist/${file}`);
}
