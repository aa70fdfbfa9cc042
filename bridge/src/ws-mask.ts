/**
 * Which masks the bridge puts on its WebSocket frames.
 *
 * RFC 6455 has clients mask every frame with a fresh random key so that a script in a browser
 * cannot choose the bytes a plain-text intermediary (a transparent caching proxy) sees, and so
 * poison its cache. Where no intermediary can read the bytes, the mask protects nothing: over TLS
 * (wss:, how a bridge reaches a deployed relay through nginx) and on loopback. There the bridge
 * uses the all-zero key. Frames stay masked frames, which the relay requires, but `ws` then skips
 * the XOR and the copy on both ends: in a streamed download those were about half of the
 * bridge's and the proxy's CPU (bench/RESULTS.md, hot spots). A plain ws: relay elsewhere keeps
 * random keys.
 */
import { classifyAddress } from '@ctll/protocol';

export type MaskGenerator = (mask: Buffer) => void;

const zeroMask: MaskGenerator = (mask) => {
  mask.fill(0);
};

/** The `generateMask` option for a tunnel to `url`, or undefined for ws's random masks. */
export function maskFor(url: URL): MaskGenerator | undefined {
  if (url.protocol === 'wss:') return zeroMask;
  return isLoopback(url.hostname) ? zeroMask : undefined;
}

function isLoopback(hostname: string): boolean {
  const host = hostname.toLowerCase();
  // RFC 6761: localhost names resolve to loopback; anything else is judged as an address.
  return host === 'localhost' || host.endsWith('.localhost') || classifyAddress(host) === 'loopback';
}
