/**
 * Decides which api-backend replica reports a proxy's unexpected exit. Replicas sharing one engine
 * each follow its events, so each sees the same container die; without a word between them one
 * crash would be N error lines, N `ctll_proxy_stops_total{reason="error"}` and N audit facts. The
 * first replica to insert the exit's id (the container id) into `proxy_exit_reports` reports it;
 * for the others the insert changes nothing and they stay quiet. Each replica still removes the
 * dead proxy (that is idempotent under the per-owner locks).
 *
 * A database that cannot answer does not silence a crash: the replica reports it (a duplicate is
 * better than none) and says why in a warning. An exit without an id (the process driver, whose
 * proxies are children of one api-backend) is reported as it comes.
 */
import type { Queryable } from '../audit/database';
import type { Logger } from '../logger';

/** How long a claim is kept: far longer than any replica takes to hear of an exit (the ledger keeps ten minutes). */
const KEEP_HOURS = 24;

export class ExitClaims {
  constructor(
    private readonly database: Queryable,
    private readonly logger: Logger,
  ) {}

  /** True when this replica is the one to report the exit `exitId` of `ownerHash`'s proxy. */
  async claim(ownerHash: string, exitId: string | undefined): Promise<boolean> {
    if (exitId === undefined) return true;
    try {
      const { rows } = await this.database.query(
        'INSERT INTO proxy_exit_reports (exit_id, owner_hash) VALUES ($1, $2) ON CONFLICT (exit_id) DO NOTHING RETURNING exit_id',
        [exitId, ownerHash],
      );
      if (rows.length === 0) {
        this.logger.debug('StreamingProxy exit already reported by another replica', { owner: ownerHash });
        return false;
      }
      await this.prune();
      return true;
    } catch (error) {
      this.logger.warn('StreamingProxy exit claim failed; reporting the exit here, other replicas may report it too', {
        owner: ownerHash,
        error: (error as Error).message,
      });
      return true;
    }
  }

  /** Crashes are rare, so the table is pruned as claims are made, never on a timer. */
  private async prune(): Promise<void> {
    await this.database
      .query(`DELETE FROM proxy_exit_reports WHERE reported_at < now() - interval '${KEEP_HOURS} hours'`)
      .catch((error: Error) => this.logger.warn('StreamingProxy exit claims could not be pruned', { error: error.message }));
  }
}
