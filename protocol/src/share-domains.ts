/**
 * Which hosts a zrok share may live on. A share URL is something a user hands the relay, and the
 * relay then connects to it from inside our network: without an allow-list, "my share is at
 * https://1.1.1.1:22" turns the relay into a forwarder to any host and, through the errors it
 * reports, a port scanner. So shares must sit on the zrok frontends the operator names
 * (ZROK_SHARE_DOMAINS): an entry allows that host and every subdomain of it. api-backend checks
 * at registration and the streaming-proxy again before each connection, with this one function.
 *
 * The check is on the URL's host name only, before any DNS lookup, so a refused URL costs nothing
 * and sends no packet anywhere.
 */

/** The public zrok service's share frontend: shares are `https://<token>.share.zrok.io`. */
export const DEFAULT_SHARE_DOMAINS: readonly string[] = Object.freeze(['share.zrok.io']);

/** One allow-list entry, normalised: lower case, no brackets, no trailing dot; undefined if unusable. */
export function normaliseShareDomain(entry: string): string | undefined {
  const host = entry.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
  // A host name or IPv4 literal (labels of letters, digits and '-'), or an IPv6 literal.
  const valid = host.includes(':') ? /^[0-9a-f:.]+$/.test(host) : /^[a-z0-9-]+(\.[a-z0-9-]+)*$/.test(host);
  return valid ? host : undefined;
}

/** A comma-separated list (the setting's format) as normalised entries; throws naming a bad entry. */
export function parseShareDomains(list: string): string[] {
  const entries = list.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
  return entries.map((entry) => {
    const host = normaliseShareDomain(entry);
    if (host === undefined) throw new Error(`"${entry}" is not a host name (expected e.g. share.zrok.io)`);
    return host;
  });
}

/** Whether a URL's host name (as `URL.hostname` gives it) is an allowed domain or below one. */
export function isAllowedShareHost(hostname: string, domains: readonly string[]): boolean {
  const host = hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
  return domains.some((domain) => host === domain || host.endsWith(`.${domain}`));
}
