/**
 * Many desktop bridges in one process, for the scale and idle-memory scenarios: each is the real
 * bridge library (`startBridge`, what the CLI runs) with its own token and tunnel. On a real
 * deployment every bridge sits on a different PC; here they share one process so that a hundred
 * of them do not cost a hundred Node runtimes on a 2-core machine.
 *
 * argv[2] is JSON: {server, target, transport, tokens: string[], concurrency, wholeFrames?}. The fleet reports
 * `{type: 'ready', connected, failed, errors, ms}` once every bridge connected or gave up, and
 * closes them all on the message `close` (or when the bench goes away).
 */
import { startBridge, type Bridge } from '../../../bridge/src';
import type { TransportName } from '../../../bridge/src/transport';

interface FleetSpec {
  server: string;
  target: string;
  transport: TransportName;
  tokens: string[];
  concurrency: number;
  /** Offer whole frames on the tunnel (the bridge's default); false to measure without them. */
  wholeFrames?: boolean;
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2]) as FleetSpec;
  const bridges: Bridge[] = [];
  const errors: string[] = [];
  const began = Date.now();
  let next = 0;
  let connected = 0;
  const worker = async () => {
    while (next < spec.tokens.length) {
      const token = spec.tokens[next++];
      const bridge = startBridge({ server: spec.server, token, target: spec.target, transport: spec.transport, wholeFrames: spec.wholeFrames });
      bridges.push(bridge);
      try {
        await bridge.waitConnected(30_000);
        connected += 1;
      } catch (error) {
        if (errors.length < 5) errors.push((error as Error).message);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, spec.concurrency) }, worker));
  process.send?.({ type: 'ready', connected, failed: spec.tokens.length - connected, errors, ms: Date.now() - began });

  const close = async () => {
    await Promise.race([Promise.all(bridges.map((bridge) => bridge.close())), new Promise((r) => setTimeout(r, 5000))]);
    process.exit(0);
  };
  process.on('message', (message) => {
    if (message === 'close') void close();
  });
  process.on('disconnect', () => void close());
  process.on('SIGTERM', () => void close());
}

void main();
