/**
 * Which corporate proxy (HTTP(S) or SOCKS), if any, carries the connection to the relay. The same rules as curl and
 * most npm tools: an explicit `--proxy` wins; otherwise the scheme's own variable (HTTPS_PROXY for
 * wss, HTTP_PROXY for ws), then ALL_PROXY, unless NO_PROXY names the relay's host. Only the relay
 * connection uses it: the local LLM server is on this machine and always reached directly.
 * The CLI reads the environment and passes the values in; nothing here reads process.env.
 */
import { OptionError } from './errors';

export interface ProxyEnv {
  httpsProxy?: string;
  httpProxy?: string;
  allProxy?: string;
  noProxy?: string;
}

/** The proxy for a connection to `url` (a ws:, wss:, http: or https: URL), or undefined to go direct. */
export function chooseProxy(url: URL, explicit?: string, env: ProxyEnv = {}): URL | undefined {
  if (explicit !== undefined && explicit !== '') return parseProxyUrl(explicit, '--proxy');
  const secure = url.protocol === 'wss:' || url.protocol === 'https:';
  const candidates: Array<[string | undefined, string]> = secure
    ? [[env.httpsProxy, 'HTTPS_PROXY'], [env.allProxy, 'ALL_PROXY']]
    : [[env.httpProxy, 'HTTP_PROXY'], [env.allProxy, 'ALL_PROXY']];
  const chosen = candidates.find(([value]) => value !== undefined && value.trim() !== '');
  if (!chosen) return undefined;
  if (bypassesProxy(url, env.noProxy)) return undefined;
  return parseProxyUrl(chosen[0] as string, chosen[1]);
}

/**
 * True when NO_PROXY exempts `url`. Entries are separated by commas or spaces; `*` exempts every
 * host; `example.com`, `.example.com` and `*.example.com` all cover example.com and its
 * subdomains; an entry with `:port` only matches that port.
 */
export function bypassesProxy(url: URL, noProxy: string | undefined): boolean {
  if (!noProxy) return false;
  const host = url.hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  const port = url.port || (url.protocol === 'wss:' || url.protocol === 'https:' ? '443' : '80');
  for (const raw of noProxy.split(/[\s,]+/)) {
    const entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === '*') return true;
    const match = /^(.*?)(?::(\d+))?$/.exec(entry.replace(/^\[(.*)\](?=:|$)/, '$1'));
    const entryHost = (match?.[1] ?? entry).replace(/^\*?\./, '');
    const entryPort = match?.[2];
    if (entryPort !== undefined && entryPort !== port) continue;
    if (host === entryHost || host.endsWith(`.${entryHost}`)) return true;
  }
  return false;
}

/** HTTP(S) proxies take a CONNECT; the SOCKS ones (socks5h: the proxy resolves the name) go through proxy-agent.ts. */
const PROXY_SCHEMES = ['http:', 'https:', 'socks5:', 'socks5h:', 'socks4:', 'socks4a:'];

function parseProxyUrl(value: string, source: string): URL {
  // A bare host:port is common in these variables; it means an HTTP proxy.
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new OptionError(source, `"${value}" is not a URL (expected e.g. http://proxy.example.com:3128)`);
  }
  if (!PROXY_SCHEMES.includes(url.protocol)) {
    throw new OptionError(source, `proxy scheme "${url.protocol}" is not supported (expected ${PROXY_SCHEMES.join(', ')})`);
  }
  return url;
}
