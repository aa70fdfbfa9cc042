/**
 * Which driver × transport combinations the end-to-end suites run. Every suite runs the process
 * driver; the docker driver joins when an engine answers (and must, under CTLL_REQUIRE_DOCKER=1,
 * which .ci/run sets). Transports join as they are built.
 */
import type { DriverName, Transport } from './layout';

export interface Combination {
  driver: DriverName;
  transport: Transport;
}

export const TRANSPORTS: Transport[] = ['ws'];

export function combinations(drivers: DriverName[] = ['process']): Combination[] {
  return drivers.flatMap((driver) => TRANSPORTS.map((transport) => ({ driver, transport })));
}
