/**
 * Which IP addresses the relay may reach on a user's behalf. A zrok share is a URL a user hands
 * us; without this check, "my share is at http://10.0.0.5" or a name that resolves to 127.0.0.1
 * would turn the relay into a way into its own network. api-backend applies it when a share is
 * registered and the streaming-proxy again at connect time (DNS can change in between), so both
 * sides share this one classifier rather than two that could drift apart.
 *
 * Anything not known to be globally routable counts as non-public: IPv6 outside 2000::/3, the
 * special-purpose IPv4 blocks, and addresses that embed an IPv4 address (mapped, NAT64, 6to4) are
 * judged by the address they embed. Pure functions on strings; no sockets, no DNS.
 *
 * The same parsers give per-client limits their key (`clientKey`), so the relay has one reading
 * of an address, not two.
 */
import { ipv4, ipv4Mask, parseIPv4 } from './ipv4';

export type AddressKind =
  | 'public'
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'shared'
  | 'multicast'
  | 'broadcast'
  | 'documentation'
  | 'reserved'
  | 'invalid';

type Range = [base: number, prefix: number, kind: AddressKind];

/** IANA's IPv4 special-purpose registry, by what the block means to us. */
const IPV4_RANGES: Range[] = [
  [ipv4(0, 0, 0, 0), 8, 'unspecified'], // "this network"; 0.0.0.0 reaches the local host
  [ipv4(10, 0, 0, 0), 8, 'private'],
  [ipv4(100, 64, 0, 0), 10, 'shared'], // carrier-grade NAT
  [ipv4(127, 0, 0, 0), 8, 'loopback'],
  [ipv4(169, 254, 0, 0), 16, 'link-local'], // includes cloud metadata at 169.254.169.254
  [ipv4(172, 16, 0, 0), 12, 'private'],
  [ipv4(192, 0, 0, 0), 24, 'reserved'],
  [ipv4(192, 0, 2, 0), 24, 'documentation'],
  [ipv4(192, 88, 99, 0), 24, 'reserved'],
  [ipv4(192, 168, 0, 0), 16, 'private'],
  [ipv4(198, 18, 0, 0), 15, 'reserved'], // benchmarking
  [ipv4(198, 51, 100, 0), 24, 'documentation'],
  [ipv4(203, 0, 113, 0), 24, 'documentation'],
  [ipv4(224, 0, 0, 0), 4, 'multicast'],
  [ipv4(255, 255, 255, 255), 32, 'broadcast'],
  [ipv4(240, 0, 0, 0), 4, 'reserved'],
];

/** Classifies an IPv4 or IPv6 address in text form (brackets and a zone id are allowed). */
export function classifyAddress(address: string): AddressKind {
  const text = address.replace(/^\[(.*)\]$/, '$1');
  const v4 = parseIPv4(text);
  if (v4 !== undefined) return classifyIPv4(v4);
  const v6 = parseIPv6(text);
  return v6 ? classifyIPv6(v6) : 'invalid';
}

export function isPublicAddress(address: string): boolean {
  return classifyAddress(address) === 'public';
}

/** True for an IPv4 or IPv6 literal (so no DNS lookup is involved). */
export function isIpLiteral(host: string): boolean {
  const text = host.replace(/^\[(.*)\]$/, '$1');
  return parseIPv4(text) !== undefined || parseIPv6(text) !== undefined;
}

/**
 * What a per-client limit counts by: an IPv4 address as it is (also when a dual-stack socket
 * reports it IPv4-mapped, ::ffff:a.b.c.d), an IPv6 address by its /64, because one subscriber is
 * handed a whole /64 and could otherwise step around a limit one address at a time. Text that is
 * not an address is returned unchanged.
 */
export function clientKey(address: string): string {
  const text = address.replace(/^\[(.*)\]$/, '$1');
  if (parseIPv4(text) !== undefined) return text;
  const g = parseIPv6(text);
  if (!g) return address;
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return [g[6] >> 8, g[6] & 0xff, g[7] >> 8, g[7] & 0xff].join('.');
  return `${g.slice(0, 4).map((x) => x.toString(16)).join(':')}::/64`;
}

function classifyIPv4(value: number): AddressKind {
  for (const [base, prefix, kind] of IPV4_RANGES) {
    if (((value & ipv4Mask(prefix)) >>> 0) === base) return kind;
  }
  return 'public';
}

function classifyIPv6(g: number[]): AddressKind {
  const embedded = () => classifyIPv4(((g[6] << 16) | g[7]) >>> 0);
  const zerosUpTo = (n: number) => g.slice(0, n).every((x) => x === 0);
  if (g.every((x) => x === 0)) return 'unspecified';
  if (zerosUpTo(7) && g[7] === 1) return 'loopback';
  if (zerosUpTo(5) && g[5] === 0xffff) return embedded(); // ::ffff:a.b.c.d, IPv4-mapped
  if (zerosUpTo(4) && g[4] === 0xffff && g[5] === 0) return embedded(); // ::ffff:0:a.b.c.d, translated
  if (zerosUpTo(6)) return 'reserved'; // ::a.b.c.d, deprecated IPv4-compatible
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) return embedded(); // NAT64
  if (g[0] === 0x64 && g[1] === 0xff9b && g[2] === 1) return 'private'; // local-use NAT64
  if (g[0] === 0x2002) return classifyIPv4(((g[1] << 16) | g[2]) >>> 0); // 6to4
  if (g[0] === 0x2001 && g[1] === 0x0db8) return 'documentation';
  if (g[0] === 0x2001 && g[1] < 0x0200) return 'reserved'; // 2001::/23, incl. Teredo
  if ((g[0] & 0xfff0) === 0x3ff0) return 'documentation'; // 3fff::/20
  if ((g[0] & 0xfe00) === 0xfc00) return 'private'; // unique local
  if ((g[0] & 0xffc0) === 0xfe80) return 'link-local';
  if ((g[0] & 0xffc0) === 0xfec0) return 'private'; // deprecated site-local
  if ((g[0] & 0xff00) === 0xff00) return 'multicast';
  // Everything globally routable today is inside 2000::/3.
  return (g[0] & 0xe000) === 0x2000 ? 'public' : 'reserved';
}

/** Eight 16-bit groups, or undefined if the text is not an IPv6 address. */
function parseIPv6(input: string): number[] | undefined {
  let text = input.includes('%') ? input.slice(0, input.indexOf('%')) : input;
  if (!text.includes(':')) return undefined;
  // A dotted IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = parseIPv4(tail);
    if (v4 === undefined) return undefined;
    text = `${text.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (part: string) => (part === '' ? [] : part.split(':'));
  const head = groups(halves[0]);
  const rest = halves.length === 2 ? groups(halves[1]) : [];
  const written = [...head, ...rest];
  if (written.some((group) => !/^[0-9a-f]{1,4}$/i.test(group))) return undefined;
  if (halves.length === 1 ? written.length !== 8 : written.length > 7) return undefined;
  const zeros = new Array<string>(8 - written.length).fill('0');
  return [...head, ...zeros, ...rest].map((group) => parseInt(group, 16));
}
