/**
 * What a registered zrok share may point at. The proxy will send the user's requests to this URL
 * from inside our network, so a URL is accepted only if it is https, carries no credentials, its
 * host is on one of the zrok frontends the operator allows (ZROK_SHARE_DOMAINS, checked before
 * any DNS lookup), and every address that host resolves to is public
 * (protocol/src/public-address.ts). The proxy checks the host and the addresses again when it
 * connects, because DNS may answer differently by then.
 *
 * ZROK_ALLOW_INSECURE=true (development, refused in production) accepts plain http and
 * non-public addresses, so a share can be played by a server on 127.0.0.1; the domain
 * allow-list still applies.
 */
import { lookup } from 'node:dns/promises';
import { BadRequestError, classifyAddress, isAllowedShareHost, isIpLiteral, ServiceUnavailableError } from '@ctll/protocol';

export interface SharePolicy {
  /** ZROK_ALLOW_INSECURE: accept plain http and private, loopback or link-local addresses. */
  allowInsecure: boolean;
  /** ZROK_SHARE_DOMAINS: the hosts (and their subdomains) a share may be on. */
  domains: readonly string[];
  /** Every address a host name resolves to; replaceable in tests. */
  resolve?: (host: string) => Promise<string[]>;
}

export const MAX_URL_LENGTH = 2048;

/** DNS answers that mean "no such name", as opposed to a resolver that is down. */
const NO_SUCH_NAME = new Set(['ENOTFOUND', 'ENODATA', 'EAI_NONAME', 'EAI_NODATA']);

export async function systemResolve(host: string): Promise<string[]> {
  const answers = await lookup(host, { all: true, verbatim: true });
  return answers.map((answer) => answer.address);
}

/** The share's public URL, checked and normalised (no trailing slash); throws a 400 naming the problem. */
export async function validatePublicUrl(raw: string, policy: SharePolicy, field = 'tunnelInfo.publicUrl'): Promise<string> {
  const url = parseHttpUrl(raw, field);
  if (url.protocol === 'http:' && !policy.allowInsecure) {
    throw new BadRequestError(
      `${field} must use https: plain http is accepted only when the relay runs with ZROK_ALLOW_INSECURE=true (development)`,
      'share_url_insecure',
    );
  }
  if (url.search || url.hash) {
    throw new BadRequestError(`${field} must be the share's base URL, without a query or fragment`, 'share_url_invalid');
  }
  if (!isAllowedShareHost(url.hostname, policy.domains)) {
    // The allowed list is the operator's public configuration, so naming it helps and leaks nothing.
    throw new BadRequestError(
      `${field} must be a share on ${policy.domains.join(' or ')} (the zrok frontends this relay allows; the operator sets ZROK_SHARE_DOMAINS)`,
      'share_url_not_allowed',
    );
  }
  if (!policy.allowInsecure) await checkAddresses(url.hostname, field, policy.resolve ?? systemResolve);
  return normalise(url);
}

/** The desktop's own server address (informational: the relay never connects to it). */
export function validateLocalUrl(raw: string, field = 'tunnelInfo.localUrl'): string {
  return normalise(parseHttpUrl(raw, field));
}

function parseHttpUrl(raw: string, field: string): URL {
  if (raw.length > MAX_URL_LENGTH) throw new BadRequestError(`${field} is longer than ${MAX_URL_LENGTH} characters`, 'share_url_invalid');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new BadRequestError(`${field} is not a URL (expected e.g. https://abc123.share.zrok.io)`, 'share_url_invalid');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new BadRequestError(`${field} must be an https URL, not ${url.protocol}`, 'share_url_invalid');
  }
  if (url.username || url.password) {
    throw new BadRequestError(`${field} must not contain credentials (user:password@)`, 'share_url_credentials');
  }
  return url;
}

async function checkAddresses(hostname: string, field: string, resolve: (host: string) => Promise<string[]>): Promise<void> {
  const host = hostname.replace(/^\[(.*)\]$/, '$1');
  let addresses: string[];
  if (isIpLiteral(host)) {
    addresses = [host];
  } else {
    try {
      addresses = await resolve(host);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      if (NO_SUCH_NAME.has(code)) throw new BadRequestError(`${field}: the host ${host} does not resolve (${code})`, 'share_url_unresolvable');
      // Logged as a 5xx, so no host name here (a zrok host name is the share token) and no cause.
      throw new ServiceUnavailableError(`cannot resolve the share's host right now (${code}); try again`, 'dns_unavailable', {
        publicMessage: "cannot resolve the share's host right now; try again",
      });
    }
    if (addresses.length === 0) throw new BadRequestError(`${field}: the host ${host} has no addresses`, 'share_url_unresolvable');
  }
  for (const address of addresses) {
    const kind = classifyAddress(address);
    if (kind === 'public') continue;
    const via = address === host ? 'is' : `resolves to ${address},`;
    throw new BadRequestError(
      `${field} ${via} ${/^[aeiou]/.test(kind) ? 'an' : 'a'} ${kind} address: the relay forwards only to public addresses (ZROK_ALLOW_INSECURE=true lifts this in development)`,
      'share_url_private_address',
    );
  }
}

function normalise(url: URL): string {
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}
