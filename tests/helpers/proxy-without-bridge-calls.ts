/**
 * A streaming-proxy as the releases before bridge calls were: this source, bundled with one change,
 * its frame link's `hello` no longer offering `bridgeCalls`. api-backend must then carry a polling
 * bridge's register, poll, respond and heartbeat calls to it as HTTP requests
 * (api-backend/src/relay/http-relay.ts), as it does for such a proxy still running after an upgrade
 * (the docker driver adopts a running proxy whose protocol version matches). The HTTP routes that
 * answer them are the proxy's own, unchanged: the same handlers serve both ways in.
 */
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const ROOT = path.resolve(__dirname, '../..');
/** The hello as upstream-link.ts writes it; the helper fails loudly if that line changes. */
const HELLO_OFFER = ', bridgeCalls: true })';

export async function buildProxyWithoutBridgeCalls(outfile: string): Promise<void> {
  let edits = 0;
  await build({
    absWorkingDir: ROOT,
    entryPoints: ['streaming-proxy/src/main.ts'],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    logLevel: 'warning',
    external: ['bufferutil', 'utf-8-validate'],
    plugins: [
      {
        name: 'hello-without-bridge-calls',
        setup(b) {
          b.onLoad({ filter: /[\\/]streaming-proxy[\\/]src[\\/]upstream[\\/]upstream-link\.ts$/ }, async (args) => {
            const source = await fs.promises.readFile(args.path, 'utf8');
            edits += source.split(HELLO_OFFER).length - 1;
            return { contents: source.replace(HELLO_OFFER, ' })'), loader: 'ts' };
          });
        },
      },
    ],
  });
  if (edits !== 1) throw new Error(`expected the proxy's hello to offer bridgeCalls once (${HELLO_OFFER}), found ${edits}: update ${path.relative(ROOT, __filename)}`);
}
