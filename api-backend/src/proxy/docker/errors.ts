/**
 * The one place where the Docker engine's failures become ours. dockerode rejects with either a
 * socket error (`code` ECONNREFUSED, ENOENT ...: no engine answers) or an HTTP error (`statusCode`
 * plus the engine's `json.message`). `classify` names what happened, so the driver can decide
 * what is harmless (removing something already gone, starting something already started), and
 * `toRelayError` turns what is not into an error a person can act on, with its HTTP status.
 *
 * The engine's status codes alone are not enough: Docker 20.10 answers 403 for "pool overlaps"
 * and for "endpoint already exists", and 404 for both a missing container and a missing image,
 * so the message text decides between them.
 */
import { RelayError, ServiceUnavailableError } from '@ctll/protocol';

/** What a caller is told about any engine trouble: the engine's words and our hints are for the log. */
const CANNOT_START = 'the relay cannot start your streaming proxy right now; try again later (the operator finds the cause in the relay log)';

export type DockerFailure =
  /** No engine answers on the socket (not running, wrong DOCKER_HOST, no permission). */
  | 'unreachable'
  | 'image-missing'
  | 'not-found'
  /** Name in use, already connected, removal already in progress. */
  | 'conflict'
  /** Already started / already stopped (HTTP 304). */
  | 'not-modified'
  /** A network create whose subnet overlaps one the engine already has. */
  | 'pool-overlap'
  /** A network remove while containers are still attached. */
  | 'active-endpoints'
  | 'other';

const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'EPERM', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND']);

interface DockerodeError {
  statusCode?: number;
  code?: string;
  json?: { message?: string } | null;
  message?: string;
}

/** The engine's own words, without dockerode's "(HTTP code 404) no such container -" prefix. */
export function dockerMessage(error: unknown): string {
  const e = error as DockerodeError;
  const fromEngine = e?.json && typeof e.json === 'object' ? e.json.message : undefined;
  return (fromEngine ?? e?.message ?? String(error)).trim();
}

export function classify(error: unknown): DockerFailure {
  const e = error as DockerodeError;
  if (!e || typeof e !== 'object') return 'other';
  if (e.statusCode === undefined) return e.code && UNREACHABLE_CODES.has(e.code) ? 'unreachable' : 'other';
  const message = dockerMessage(error).toLowerCase();
  if (e.statusCode === 304) return 'not-modified';
  if (message.includes('pool overlaps')) return 'pool-overlap';
  if (message.includes('active endpoints')) return 'active-endpoints';
  if (e.statusCode === 404 && message.includes('no such image')) return 'image-missing';
  if (e.statusCode === 404) return 'not-found';
  // A disconnect from a network already left, or gone from this node: a swarm task's leg on an
  // overlay goes with the node's copy of the overlay when the last other task there ends.
  if (/is not connected to (the )?network/.test(message) || /^network \S+ not found$/.test(message)) return 'not-found';
  if (e.statusCode === 409 || /already (exists|in use|in progress)/.test(message)) return 'conflict';
  return 'other';
}

/** Runs `work`; a 404 (already gone) or 304 (already in that state) counts as done. */
export async function ignoringGone<T>(work: () => Promise<T>): Promise<T | undefined> {
  try {
    return await work();
  } catch (error) {
    const failure = classify(error);
    if (failure === 'not-found' || failure === 'not-modified') return undefined;
    throw error;
  }
}

export interface ErrorContext {
  /** What we were doing, e.g. "create the proxy container". */
  action: string;
  image: string;
}

/** The error a caller sees (always a RelayError); the engine's error stays as `cause` for the logs. */
export function toRelayError(error: unknown, context: ErrorContext): RelayError {
  if (error instanceof RelayError) return error;
  switch (classify(error)) {
    case 'unreachable':
      return dockerUnavailable(error);
    case 'image-missing':
      return imageMissing(context.image, error);
    default:
      return new ServiceUnavailableError(`Docker could not ${context.action}: ${dockerMessage(error)}`, 'docker_error', {
        cause: error,
        publicMessage: CANNOT_START,
      });
  }
}

export function dockerUnavailable(error: unknown): ServiceUnavailableError {
  const code = (error as DockerodeError)?.code;
  const hint =
    code === 'EACCES' || code === 'EPERM'
      ? 'api-backend may not use the Docker socket (add its user to the docker group)'
      : 'start the Docker engine, or point DOCKER_HOST at it';
  return new ServiceUnavailableError(`Docker engine unreachable (${dockerMessage(error)}): ${hint}`, 'docker_unavailable', {
    cause: error,
    publicMessage: CANNOT_START,
  });
}

export function imageMissing(image: string, cause?: unknown): ServiceUnavailableError {
  return new ServiceUnavailableError(
    `the streaming-proxy image "${image}" is not on this Docker engine (it is never pulled). Build it with ` +
      '`npm run docker:build`; on a machine without a registry, first `npm run docker:base-image`, then ' +
      '`BASE_IMAGE=ctll/node-base:local npm run docker:build`. Or set PROXY_IMAGE to an image the engine has.',
    'proxy_image_missing',
    { cause, publicMessage: CANNOT_START },
  );
}

export function subnetsExhausted(pool: string, prefix: number, networks: number): ServiceUnavailableError {
  return new ServiceUnavailableError(
    `no free /${prefix} subnet left in PROXY_SUBNET_POOL=${pool} (${networks} networks already use it): ` +
      'widen the pool or raise PROXY_SUBNET_PREFIX',
    'proxy_subnets_exhausted',
    { publicMessage: 'the relay has no room for another streaming proxy right now; try again later' },
  );
}

/** A proxy that did not come up, under any driver. */
export function startFailed(detail: string, cause?: unknown): ServiceUnavailableError {
  return new ServiceUnavailableError(`StreamingProxy failed to start: ${detail}`, 'proxy_start_failed', { cause, publicMessage: CANNOT_START });
}
