/**
 * Winston, one line of JSON per event, every line with a component label. User ids never appear
 * raw: `userHash` is the same 16-hex SHA-256 prefix that names the user's network and container,
 * so an operator can still follow one user across logs, Docker and the audit tables.
 */
import winston from 'winston';

export type Logger = winston.Logger;

export function createLogger(level: string): Logger {
  return winston.createLogger({
    level,
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    transports: [new winston.transports.Console()],
  });
}

/** A child logger whose lines carry `component`; lifecycle components include "StreamingProxy". */
export function componentLogger(root: Logger, component: string): Logger {
  return root.child({ component });
}
