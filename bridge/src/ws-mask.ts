/**
 * Which masks the bridge puts on its WebSocket frames.
 *
 * RFC 6455 §5.3 has clients mask every frame with a fresh, unpredictable key so that nobody can
 * choose the bytes an intermediary sees: a transparent caching proxy, or one that inspects TLS
 * (corporate networks decrypt wss: and read the frames inside), could otherwise be fed frames
 * that look like requests to it. So every connection that leaves the machine uses ws's random
 * keys, wss: included; bufferutil (an optional dependency, which ws loads when installed) does the
 * XOR natively, which keeps masking a small share of the CPU in a streamed download.
 *
 * Only a relay on loopback gets the all-zero key: no intermediary exists there, the frames stay
 * masked frames (the relay requires that), and ws then skips the XOR and the copy on both ends.
 */
import { classifyAddress, zeroMask } from '@ctll/protocol';

export type MaskGenerator = (mask: Buffer) => void;

/**
 * The `generateMask` option for a tunnel to `url`, or undefined for ws's random masks. Through a
 * proxy the frames pass an intermediary even when the relay's name is a loopback one.
 */
export function maskFor(url: URL, throughProxy = false): MaskGenerator | undefined {
  return !throughProxy && isLoopback(url.hostname) ? zeroMask : undefined;
}

function isLoopback(hostname: string): boolean {
  const host = hostname.toLowerCase();
  // RFC 6761: localhost names resolve to loopback; anything else is judged as an address.
  return host === 'localhost' || host.endsWith('.localhost') || classifyAddress(host) === 'loopback';
}
