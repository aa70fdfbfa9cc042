// The platform-independent half of building the bridge's single executable: bundles the bridge and
// turns the bundle into the blob Node injects (sea-prep.blob in the directory given). Injecting it
// into a copy of node is per platform: scripts/build-bridge-sea.sh, or bridge/README.md on Windows.
// Usage: node scripts/bridge-sea-blob.mjs <work dir>
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const work = path.resolve(process.argv[2] ?? 'sea-build');
mkdirSync(work, { recursive: true });

execFileSync(process.execPath, [path.join(root, 'scripts/build.mjs'), 'bridge'], { cwd: root, stdio: 'inherit' });
// The bundle's #! line is for running it as a script. In the executable that line instead tells ws
// not to look for its optional native add-on, which a single executable cannot load (Node would
// print a warning on every start).
const bundle = readFileSync(path.join(root, 'bridge/dist/cli.js'), 'utf8').replace(/^#!.*/, "process.env.WS_NO_BUFFER_UTIL = '1';");
writeFileSync(path.join(work, 'cli.js'), bundle);
const config = { main: path.join(work, 'cli.js'), output: path.join(work, 'sea-prep.blob'), disableExperimentalSEAWarning: true };
writeFileSync(path.join(work, 'sea-config.json'), JSON.stringify(config));
execFileSync(process.execPath, ['--experimental-sea-config', path.join(work, 'sea-config.json')], { stdio: 'inherit' });
