/**
 * The bridge's options: every default written out in one frozen object, then one function that
 * checks what the caller gave and turns it into the URLs and numbers the rest of the bridge uses.
 * A bad value throws an OptionError naming the flag it came from.
 */
import { FixedTokenSource, type TokenSource } from './auth/token-source';
import { OptionError } from './errors';
import { MAX_NAMED_TARGETS, TARGET_NAME_PATTERN, type BackoffOptions } from '@ctll/protocol';
import { chooseProxy, type ProxyEnv } from './proxy';
import type { BridgeStatus } from './status';
import { tokenExpiry } from './token';
import { TRANSPORT_NAMES, type TransportName } from './transport';

export interface BridgeOptions {
  /** The relay, e.g. https://relay.example.com (ws: and wss: work too; /ws/tunnel is added unless present). */
  server: string;
  /** The JWT (or relay key) the relay verifies; sent as `Authorization: Bearer`. Unused with `tokenSource`. */
  token?: string;
  /** Where to get the current credential, for a bridge whose token is renewed (`ctll-bridge login`); wins over `token`. */
  tokenSource?: TokenSource;
  /** The local LLM server; may carry a base path (http://127.0.0.1:8080/v1). */
  target?: string;
  /**
   * More local servers, by name (`--target lms=http://127.0.0.1:1234`): a request whose path starts
   * with `/t/<name>/` goes to that one, without the prefix (local-targets.ts). `target` stays the default.
   */
  targets?: Readonly<Record<string, string>>;
  /** How to reach the relay; `ws` falls back to `poll` where WebSockets are blocked (fallback.ts). */
  transport?: TransportName;
  /** With `transport: 'ws'`: poll instead while the network seems to block WebSockets (`--no-fallback` turns it off). */
  fallback?: boolean;
  /** While fallen back to polling: how often a WebSocket is tried again. */
  wsRetryMs?: number;
  /** Proxy for the relay connection; wins over `proxyEnv`. */
  proxy?: string;
  /** HTTPS_PROXY and friends, as read by the CLI. */
  proxyEnv?: ProxyEnv;
  pingTimeoutMs?: number;
  /** Accept an http:/ws: relay that is not on this computer (the token then crosses the network in cleartext). */
  allowInsecure?: boolean;
  /**
   * Give up after the relay refused the credential this many times in a row (401, or 403 with the
   * relay's own error body); 0 retries for ever. The CLI's default is 3, the library's 0.
   */
  authFailExit?: number;
  /** Called once when the bridge gives up for good (a refused credential, see `authFailExit`); it closes itself first. */
  onGiveUp?: (error: Error) => void;
  handshakeTimeoutMs?: number;
  closeTimeoutMs?: number;
  /** How long a connection must stay up before the reconnect schedule starts again from its first step. */
  stableAfterMs?: number;
  backoff?: BackoffOptions;
  /** How often the local LLM server is asked whether it is there (target-probe.ts); 0 never asks. */
  probeIntervalMs?: number;
  /** How long one probe request may take before the target counts as not answering. */
  probeTimeoutMs?: number;
  /** Extra headers on the upgrade request. Internal: tests use it to reach a streaming-proxy directly. */
  upgradeHeaders?: Record<string, string>;
  /**
   * Offer whole frames (protocol/src/tunnel-whole.ts) on each connection; the relay uses them only
   * if it takes them too. Internal: tests and bench/whole-frames.ts turn it off to compare.
   */
  wholeFrames?: boolean;
  /**
   * Offer growing windows (protocol/src/stream-window.ts): on the WebSocket's upgrade, and in a
   * long-poll registration; the relay grows them only if it says so too. Internal: tests and the
   * bench turn it off to compare with fixed windows.
   */
  growWindows?: boolean;
  /** Called on every change of state, and when the served counter moves. */
  onStatus?: (status: BridgeStatus) => void;
  /** Things worth a log line that change nothing (the relay rejected one of our messages, say). */
  onNotice?: (message: string) => void;
}

export const DEFAULT_OPTIONS = Object.freeze({
  target: 'http://127.0.0.1:11434', // Ollama's default address
  transport: 'ws' as TransportName,
  fallback: true,
  // Often enough to leave polling soon after a network change, rare enough to cost nothing.
  wsRetryMs: 5 * 60_000,
  // The relay pings every 15 s; three missed pings' worth of silence means the connection is gone.
  pingTimeoutMs: 45_000,
  allowInsecure: false,
  authFailExit: 0,
  handshakeTimeoutMs: 10_000,
  closeTimeoutMs: 2_000,
  stableAfterMs: 10_000,
  upgradeHeaders: Object.freeze({}) as Readonly<Record<string, string>>,
  wholeFrames: true as boolean,
  growWindows: true as boolean,
  // Soon enough that the status line is right by the time someone looks; a probe costs the server nothing.
  probeIntervalMs: 30_000 as number,
  probeTimeoutMs: 5_000,
});

export interface ResolvedOptions {
  /** The relay as the person gave it, for the status line. */
  server: string;
  tunnelUrl: URL;
  relayUrl: URL;
  tokens: TokenSource;
  targetUrl: URL;
  /** The named targets, in the order given. */
  namedTargets: ReadonlyMap<string, URL>;
  transport: TransportName;
  fallback: boolean;
  wsRetryMs: number;
  proxyUrl: URL | undefined;
  pingTimeoutMs: number;
  authFailExit: number;
  handshakeTimeoutMs: number;
  closeTimeoutMs: number;
  stableAfterMs: number;
  backoff: BackoffOptions;
  probeIntervalMs: number;
  probeTimeoutMs: number;
  onGiveUp: ((error: Error) => void) | undefined;
  upgradeHeaders: Readonly<Record<string, string>>;
  wholeFrames: boolean;
  growWindows: boolean;
  onStatus: ((status: BridgeStatus) => void) | undefined;
  onNotice: ((message: string) => void) | undefined;
}

export function resolveOptions(options: BridgeOptions): ResolvedOptions {
  const given = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
  const merged = { ...DEFAULT_OPTIONS, ...given } as typeof DEFAULT_OPTIONS & BridgeOptions;
  if (!TRANSPORT_NAMES.includes(merged.transport)) {
    throw new OptionError('--transport', `"${String(merged.transport)}" is not a transport (expected ${TRANSPORT_NAMES.join(' or ')})`);
  }
  const tunnelUrl = tunnelUrlFor(merged.server);
  if (tunnelUrl.protocol === 'ws:' && !merged.allowInsecure && !isLoopback(tunnelUrl.hostname)) {
    throw new OptionError(
      '--server',
      `"${merged.server}" is not encrypted: your token would cross the network in cleartext. ` +
        'Use https://, or pass --allow-insecure for a relay on a network you trust',
    );
  }
  if (!Number.isInteger(merged.authFailExit) || merged.authFailExit < 0) {
    throw new OptionError('--auth-fail-exit', `${merged.authFailExit} must be a whole number ≥ 0`);
  }
  return {
    server: merged.server.replace(/\/+$/, ''),
    tunnelUrl,
    relayUrl: relayUrlFor(tunnelUrl),
    tokens: merged.tokenSource ?? fixedToken(merged.token),
    targetUrl: targetUrlFor(merged.target),
    namedTargets: namedTargetUrls(merged.targets ?? {}),
    transport: merged.transport,
    fallback: merged.fallback === true,
    wsRetryMs: checkMs('wsRetryMs', merged.wsRetryMs, 1),
    proxyUrl: chooseProxy(tunnelUrl, merged.proxy, merged.proxyEnv),
    pingTimeoutMs: checkMs('--ping-timeout-ms', merged.pingTimeoutMs, 100),
    authFailExit: merged.authFailExit,
    handshakeTimeoutMs: checkMs('handshakeTimeoutMs', merged.handshakeTimeoutMs, 1),
    closeTimeoutMs: checkMs('closeTimeoutMs', merged.closeTimeoutMs, 1),
    stableAfterMs: checkMs('stableAfterMs', merged.stableAfterMs, 0),
    backoff: merged.backoff ?? {},
    probeIntervalMs: merged.probeIntervalMs === 0 ? 0 : checkMs('--probe-interval-ms', merged.probeIntervalMs, 100),
    probeTimeoutMs: checkMs('probeTimeoutMs', merged.probeTimeoutMs, 1),
    upgradeHeaders: merged.upgradeHeaders,
    wholeFrames: merged.wholeFrames,
    growWindows: merged.growWindows,
    onStatus: merged.onStatus,
    onNotice: merged.onNotice,
    onGiveUp: merged.onGiveUp,
  };
}

/** localhost, 127.0.0.0/8 and ::1: a relay on this computer, where cleartext never leaves it. */
function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/** https://relay.example.com becomes wss://relay.example.com/ws/tunnel; a base path is kept. */
export function tunnelUrlFor(server: string | undefined): URL {
  if (!server) throw new OptionError('--server', 'is required (the relay, e.g. https://relay.example.com)');
  const url = parseUrl('--server', server);
  const schemes: Record<string, string> = { 'http:': 'ws:', 'https:': 'wss:', 'ws:': 'ws:', 'wss:': 'wss:' };
  const scheme = schemes[url.protocol];
  if (!scheme) throw new OptionError('--server', `"${server}" must be an http:, https:, ws: or wss: URL`);
  const tunnel = new URL(url.href.replace(/^[a-z]+:/, scheme));
  tunnel.hash = '';
  if (!/\/ws\/tunnel\/?$/.test(tunnel.pathname)) tunnel.pathname = `${tunnel.pathname.replace(/\/+$/, '')}/ws/tunnel`;
  return tunnel;
}

/** The tunnel endpoint back to the relay's base for plain requests: wss://relay.example.com/ws/tunnel is https://relay.example.com. */
export function relayUrlFor(tunnelUrl: URL): URL {
  const url = new URL(tunnelUrl.href.replace(/^ws/, 'http'));
  url.pathname = url.pathname.replace(/\/ws\/tunnel\/?$/, '').replace(/\/+$/, '');
  url.search = '';
  return url;
}

/**
 * `--target` as a person writes it, any number of times: a URL is the default target, `name=url`
 * a named one. At most one default; each name once.
 */
export function splitTargets(values: readonly string[]): { target?: string; targets: Record<string, string> } {
  let target: string | undefined;
  const targets: Record<string, string> = {};
  for (const value of values) {
    // A URL starts with its scheme and a colon, so it never reads as `name=`.
    const named = /^([^:/=]+)=(.*)$/s.exec(value);
    if (!named) {
      if (target !== undefined) throw new OptionError('--target', `two unnamed targets (${target} and ${value}): name all but one, e.g. --target lms=${value}`);
      target = value;
      continue;
    }
    const [, name, url] = named as unknown as [string, string, string];
    if (Object.prototype.hasOwnProperty.call(targets, name)) throw new OptionError('--target', `the name "${name}" is given twice`);
    targets[name] = url;
  }
  return { target, targets };
}

function namedTargetUrls(targets: Readonly<Record<string, string>>): ReadonlyMap<string, URL> {
  const entries = Object.entries(targets);
  if (entries.length > MAX_NAMED_TARGETS) throw new OptionError('--target', `at most ${MAX_NAMED_TARGETS} named targets`);
  return new Map(
    entries.map(([name, url]) => {
      if (!TARGET_NAME_PATTERN.test(name)) {
        throw new OptionError('--target', `"${name}" is not a target name (1-32 letters, digits, - or _, starting with a letter or digit)`);
      }
      return [name, targetUrlFor(url, name)];
    }),
  );
}

function targetUrlFor(target: string, name?: string): URL {
  const flag = name === undefined ? '--target' : `--target ${name}`;
  const url = parseUrl(flag, target);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new OptionError(flag, `"${target}" must be an http: or https: URL (e.g. http://127.0.0.1:11434)`);
  }
  if (url.search || url.hash) throw new OptionError(flag, `"${target}" must not have a query or fragment`);
  if (url.username || url.password) throw new OptionError(flag, 'credentials in the URL are not supported');
  return url;
}

/** A `--token` never changes; its expiry, when it is a JWT, tells the bridge when it will be refused. */
function fixedToken(token: string | undefined): TokenSource {
  const checked = checkToken(token);
  return new FixedTokenSource(checked, tokenExpiry(checked));
}

function checkToken(token: string | undefined): string {
  if (!token) throw new OptionError('--token', 'is required (or set CTLL_TOKEN), unless you sign in once with `ctll-bridge login --server <relay>`; with dev auth get one with `npm run token -- <user>`');
  // It goes into a header: anything but visible ASCII is a copy-and-paste accident.
  if (!/^[\x21-\x7e]+$/.test(token)) throw new OptionError('--token', 'contains spaces or characters a token cannot have');
  return token;
}

function checkMs(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) throw new OptionError(name, `${value} must be a whole number of milliseconds ≥ ${min}`);
  return value;
}

function parseUrl(name: string, value: string): URL {
  try {
    return new URL(value);
  } catch {
    throw new OptionError(name, `"${value}" is not a URL`);
  }
}
