/**
 * The audit's failures, in two kinds the writer treats differently. A database that cannot be
 * reached (refused, reset, shutting down, timed out) is a DatabaseUnavailableError: the writer
 * keeps its queue and retries, and a caller reading their history meets it as a 503. A statement
 * the database refuses (a constraint, bad SQL) is a DatabaseQueryError: it would fail the same way
 * on every retry, so the writer sets that one record aside. Each driver maps its own errors into
 * these two in exactly one place (pg-database.ts, pglite-database.ts).
 */
import { ServiceUnavailableError } from '@ctll/protocol';

export class DatabaseUnavailableError extends ServiceUnavailableError {
  /**
   * @param retryable false when waiting will not help by itself (wrong password, no such
   *   database): start-up gives up at once instead of retrying until its deadline.
   */
  constructor(
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    // The message names the database and the driver's words, for the operator's log only.
    super(message, 'database_unavailable', { ...options, publicMessage: 'the audit database is unavailable right now; try again later' });
  }
}

export class DatabaseQueryError extends Error {
  constructor(
    message: string,
    /** The SQLSTATE code, e.g. 23505 for a unique violation. */
    readonly sqlState: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DatabaseQueryError';
  }
}

/** The migrations cannot be applied as they are (a file changed after it ran, a bad file name). */
export class MigrationError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MigrationError';
  }
}

/** The audit could not start (database unreachable, migrations refused): api-backend does not start either. */
export class AuditStartupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AuditStartupError';
  }
}
