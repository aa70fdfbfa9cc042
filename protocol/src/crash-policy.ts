/**
 * What each of our programs does with an error nobody caught (an exception thrown from a callback,
 * a rejected promise nobody awaited): it writes one JSON line to stderr naming the program, the
 * kind and the error with its stack, plus whatever context the program adds, and exits with
 * CRASH_EXIT_CODE. Going on would mean running in a state nobody planned for; a supervisor
 * (Docker's `restart: unless-stopped`, systemd, the process driver's next start) brings up a
 * fresh one. The line is written straight to stderr, synchronously, because a logger that
 * buffers could lose it to the exit.
 *
 * Only programs install it (their main), never a library: the bridge used as a library leaves the
 * decision to its host.
 */

/** EX_SOFTWARE from sysexits.h: an internal error, distinct from a bad configuration (78). */
export const CRASH_EXIT_CODE = 70;

export type CrashKind = 'uncaughtException' | 'unhandledRejection';

export interface CrashPolicyOptions {
  /** Extra fields for the line, e.g. the component or the owner's hash (never a raw user id). */
  context?: () => Record<string, unknown>;
  /** Where the line goes; stderr unless a test of the policy itself says otherwise. */
  write?: (line: string) => void;
}

export function installCrashPolicy(program: string, options: CrashPolicyOptions = {}): void {
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  let crashed = false;
  const crash = (kind: CrashKind, error: unknown) => {
    // A second failure while reporting the first must not loop; the exit below is already due.
    if (crashed) return;
    crashed = true;
    try {
      write(`${JSON.stringify(crashLine(program, kind, error, safely(options.context)))}\n`);
    } finally {
      process.exit(CRASH_EXIT_CODE);
    }
  };
  process.on('uncaughtException', (error) => crash('uncaughtException', error));
  process.on('unhandledRejection', (reason) => crash('unhandledRejection', reason));
}

export function crashLine(program: string, kind: CrashKind, error: unknown, context: Record<string, unknown> = {}): Record<string, unknown> {
  const described =
    error instanceof Error
      ? { error: error.message, errorName: error.name, stack: error.stack }
      : { error: typeof error === 'string' ? error : safeJson(error) };
  return {
    level: 'error',
    message: `${program} crashed (${kind}); exiting for the supervisor to restart it`,
    timestamp: new Date().toISOString(),
    ...context,
    component: context.component ?? program,
    kind,
    ...described,
  };
}

function safely(context: (() => Record<string, unknown>) | undefined): Record<string, unknown> {
  try {
    return context?.() ?? {};
  } catch {
    return {};
  }
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
