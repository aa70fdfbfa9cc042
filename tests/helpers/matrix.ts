/**
 * Which driver × transport combinations the end-to-end suites run. Every suite runs the process
 * driver; the docker driver joins when an engine and the proxy image are there, and always under
 * CTLL_REQUIRE_DOCKER=1 (what .ci/run sets), where a missing engine then fails instead of skipping.
 */
import type { DriverName, Transport } from './layout';
import { dockerVerdict } from '../docker/require-docker';

export interface Combination {
  driver: DriverName;
  transport: Transport;
}

export const TRANSPORTS: Transport[] = ['ws', 'poll'];

export function drivers(): DriverName[] {
  const docker = process.env.CTLL_REQUIRE_DOCKER === '1' || dockerVerdict().ok;
  if (!docker) process.stderr.write(`[docker] end-to-end suites run the process driver only: ${(dockerVerdict() as { reason?: string }).reason}\n`);
  return docker ? ['process', 'docker'] : ['process'];
}

export function combinations(only: DriverName[] = drivers()): Combination[] {
  return only.flatMap((driver) => TRANSPORTS.map((transport) => ({ driver, transport })));
}
