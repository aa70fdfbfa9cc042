/**
 * What the short side-by-side runs (`--whole-frames`, `--edge-ab`) share: the bench's small request (1 KiB in, 1 KiB out, `POST /echo/whole`) sent a fixed
 * number of times over 32 keep-alive connections, each worker sending its next one the moment the
 * last ended.
 */
import { agentFor, ok, send, type RequestSpec, type Route } from './http-client';
import { SMALL_BODY } from './scenarios/small';

export const CONNECTIONS = 32;

export const smallRequest = (): RequestSpec => ({
  method: 'POST',
  path: '/echo/whole',
  body: SMALL_BODY,
  headers: { 'content-type': 'application/json' },
  timeoutMs: 10_000,
});

/** `count` small requests through `route`; counts the failed ones and keeps the first failure's words. */
export async function driveSmall(route: Route, count: number): Promise<{ errors: number; seconds: number; firstError?: string }> {
  const agent = agentFor(CONNECTIONS);
  let left = count;
  let errors = 0;
  let firstError: string | undefined;
  const began = performance.now();
  const worker = async () => {
    while (left > 0) {
      left -= 1;
      let body = '';
      const outcome = await send(route, agent, { ...smallRequest(), onChunk: (chunk) => (body += chunk.toString('utf8', 0, 300)) });
      if (ok(outcome, SMALL_BODY.byteLength)) continue;
      errors += 1;
      firstError ??= outcome.error ?? `status ${outcome.status}: ${body.slice(0, 300)}`;
    }
  };
  await Promise.all(Array.from({ length: CONNECTIONS }, worker));
  const seconds = (performance.now() - began) / 1000;
  agent.destroy();
  return { errors, seconds, firstError };
}
