import winston from 'winston';

export type Logger = winston.Logger;

/** JSON lines on stdout, each with a component label and the owner's hash (never the user id). */
export function createLogger(level: string, userHash: string): Logger {
  return winston.createLogger({
    level,
    defaultMeta: { component: 'streaming-proxy', owner: userHash },
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    transports: [new winston.transports.Console()],
  });
}
