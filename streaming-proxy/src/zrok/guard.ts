/**
 * The proxy's half of the share address policy: the check at connect time. api-backend checked a
 * share's addresses when it was registered, but DNS can answer differently now (a rebinding
 * attacker answers a public address to the registry and 127.0.0.1 to us). So the lookup that
 * opens every socket to a share resolves the name itself, refuses if any answer is not public,
 * and hands the socket exactly the addresses it checked: each connection is pinned to what was
 * validated. Literal addresses never go through a lookup, so they are checked before the request.
 */
import dns from 'node:dns';
import type { LookupFunction } from 'node:net';
import { classifyAddress, isAllowedShareHost, isIpLiteral } from '@ctll/protocol';

/** A share whose address the relay must not connect to. */
export class ShareAddressError extends Error {
  readonly code = 'share_address_refused';
}

export type Resolve = (host: string, callback: (error: NodeJS.ErrnoException | null, addresses: dns.LookupAddress[]) => void) => void;

export const systemResolve: Resolve = (host, callback) => dns.lookup(host, { all: true, verbatim: true }, callback);

/** A socket lookup that connects only to public addresses (or to any, when insecure shares are allowed). */
export function guardedLookup(allowInsecure: boolean, resolve: Resolve = systemResolve): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname, (error, addresses) => {
      if (error) return callback(error, '');
      if (!allowInsecure) {
        for (const { address } of addresses) {
          const kind = classifyAddress(address);
          // Never the host name in the message: a zrok host name is the share token.
          if (kind !== 'public') return callback(refusal(`the share's host now resolves to ${address}, ${article(kind)} ${kind} address`), '');
        }
      }
      const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : options.family;
      const usable = family ? addresses.filter((answer) => answer.family === family) : addresses;
      if (usable.length === 0) {
        return callback(Object.assign(new Error(`the share's host has no IPv${family} address`), { code: 'ENOTFOUND' }), '');
      }
      if (options.all) callback(null, usable);
      else callback(null, usable[0].address, usable[0].family);
    });
  };
}

/** Throws for a share URL the relay must not connect to before any lookup happens. */
export function checkShareUrl(url: URL, allowInsecure: boolean, domains: readonly string[]): void {
  if (url.username || url.password) throw new ShareAddressError('the share URL carries credentials');
  if (!isAllowedShareHost(url.hostname, domains)) throw new ShareAddressError('the share is not on an allowed zrok frontend');
  if (allowInsecure) return;
  if (url.protocol !== 'https:') throw new ShareAddressError('the share URL is not https');
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!isIpLiteral(host)) return;
  const kind = classifyAddress(host);
  if (kind !== 'public') throw refusal(`${host} is ${article(kind)} ${kind} address`);
}

function article(word: string): string {
  return /^[aeiou]/.test(word) ? 'an' : 'a';
}

function refusal(detail: string): ShareAddressError {
  return new ShareAddressError(`${detail}: the relay connects only to public addresses`);
}
