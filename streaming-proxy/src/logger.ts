/**
 * JSON lines on stdout, each with a component label and the owner's hash (never the user id):
 * the same line shape winston's json format writes for api-backend. One proxy runs per user, and
 * winston with its stream machinery cost each of them about 3 MiB of memory for four methods.
 */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export type LogMeta = Record<string, unknown>;

export interface Logger {
  error(message: string, meta?: LogMeta): void;
  warn(message: string, meta?: LogMeta): void;
  info(message: string, meta?: LogMeta): void;
  debug(message: string, meta?: LogMeta): void;
}

const SEVERITY: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

export function createLogger(level: LogLevel, userHash: string, write: (line: string) => void = (line) => process.stdout.write(line)): Logger {
  const line = (lineLevel: LogLevel) => (message: string, meta?: LogMeta) => {
    if (SEVERITY[lineLevel] > SEVERITY[level]) return;
    write(`${serialise({ ...meta, component: 'streaming-proxy', owner: userHash, level: lineLevel, message, timestamp: new Date().toISOString() })}\n`);
  };
  return { error: line('error'), warn: line('warn'), info: line('info'), debug: line('debug') };
}

/** A log line never throws: a value JSON cannot hold (a cycle, a BigInt) is written as a string. */
function serialise(entry: LogMeta): string {
  try {
    return JSON.stringify(entry, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value instanceof Error ? value.message : value));
  } catch {
    return JSON.stringify({ level: entry.level, message: entry.message, timestamp: entry.timestamp, meta: String(entry) });
  }
}
