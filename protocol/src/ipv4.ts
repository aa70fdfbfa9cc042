/**
 * The one reading of an IPv4 address in text, for the address classifier (public-address.ts) and
 * the subnet pool's CIDRs alike.
 *
 * Strict dotted decimal only: four parts, each 0-255, no leading zeros. "010.0.0.1" is refused
 * because readers disagree about it (the WHATWG URL parser and inet_aton read 8.0.0.1, a decimal
 * reader 10.0.0.1), and a security check that reads an address differently from the socket that
 * connects to it can be stepped around. The short and hex forms ("127.1", "0x7f.0.0.1") are refused
 * for the same reason. An IPv4-mapped IPv6 address is IPv6 text; public-address.ts unwraps it.
 */

/** The address as an unsigned 32-bit integer, or undefined if the text is not strict dotted decimal. */
export function parseIPv4(text: string): number | undefined {
  const match = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/.exec(text);
  if (!match) return undefined;
  const parts = match.slice(1).map(Number);
  if (parts.some((part) => part > 255)) return undefined;
  return ipv4(parts[0], parts[1], parts[2], parts[3]);
}

/** a.b.c.d as an unsigned 32-bit integer. */
export function ipv4(a: number, b: number, c: number, d: number): number {
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}

/** An unsigned 32-bit integer as dotted decimal. */
export function formatIPv4(address: number): string {
  return [24, 16, 8, 0].map((shift) => (address >>> shift) & 255).join('.');
}

/** The network mask of a prefix length (0-32) as an unsigned 32-bit integer. */
export function ipv4Mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}
