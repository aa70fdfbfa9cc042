/**
 * The tunnel protocol's version, exchanged when a desktop link opens: the bridge names the version
 * it speaks in PROTOCOL_VERSION_HEADER on the WebSocket upgrade and on the polling registration;
 * the relay refuses one it does not speak with ProtocolVersionError, whose message tells the
 * person running the bridge what to upgrade.
 */
import { ProtocolVersionError } from './errors';
import { PROTOCOL_VERSION } from './messages';

export const PROTOCOL_VERSION_HEADER = 'x-ctll-protocol';

/** The oldest version this relay still speaks; raise it when a change drops an old bridge's way of talking. */
export const MIN_PROTOCOL_VERSION = 1;

/** Bridges released before the header existed speak version 1. */
const UNNAMED_VERSION = 1;

export interface SupportedVersions {
  min: number;
  max: number;
}

/** Throws ProtocolVersionError unless `header` names a version within `supported`. */
export function checkProtocolVersion(
  header: string | string[] | undefined,
  supported: SupportedVersions = { min: MIN_PROTOCOL_VERSION, max: PROTOCOL_VERSION },
): number {
  if (Array.isArray(header)) header = header[0];
  const version = header === undefined ? UNNAMED_VERSION : /^\d{1,6}$/.test(header.trim()) ? Number(header.trim()) : NaN;
  if (Number.isNaN(version)) {
    throw new ProtocolVersionError(`${PROTOCOL_VERSION_HEADER} must be the whole number of the tunnel protocol the bridge speaks`);
  }
  const range = supported.min === supported.max ? `${supported.max}` : `${supported.min} to ${supported.max}`;
  if (version < supported.min) {
    throw new ProtocolVersionError(
      `this bridge speaks tunnel protocol ${version}, this relay speaks ${range}: upgrade ctll-bridge to a release made for this relay`,
    );
  }
  if (version > supported.max) {
    throw new ProtocolVersionError(
      `this bridge speaks tunnel protocol ${version}, this relay speaks ${range}: upgrade the relay, or use an older ctll-bridge`,
    );
  }
  return version;
}
