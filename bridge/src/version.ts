/** The bridge's version and how it introduces itself to the relay (shown in the relay's status and audit). */
import { version } from '../package.json';

export const VERSION: string = version;

export function userAgent(): string {
  return `ctll-bridge/${VERSION} (${process.platform}; node ${process.versions.node})`;
}
