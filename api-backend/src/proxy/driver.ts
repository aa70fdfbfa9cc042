/**
 * The seam between the StreamingProxyManager and whatever runs proxies. A driver creates, finds
 * and removes one proxy per owner; the manager adds locking, idling and auditing on top. Drivers
 * keep their record of what exists where it truly lives (a child process table, the Docker
 * engine), never in a second map that could disagree with it; the one exception is a count of
 * running proxies for /metrics and /health (`running()`), which must not cost an engine call.
 */
import type { Duplex } from 'node:stream';
import type { HandOffOutcome } from './tunnel-handoffs';

export type ProxyState = 'running' | 'starting' | 'stopped' | 'not-found';

/** How api-backend reaches a proxy. The secret proves to the proxy that the caller is api-backend. */
export interface ProxyEndpoint {
  host: string;
  port: number;
  secret: string;
}

export interface ProxyHandle {
  ownerHash: string;
  /** pid or container id */
  id: string;
  state: ProxyState;
  createdAt: Date;
  endpoint?: ProxyEndpoint;
}

/** 'operator': stopped from the operator's view (POST /api/admin/proxies/:ownerHash/stop). */
export type StopReason = 'user' | 'idle' | 'error' | 'shutdown' | 'operator';

export interface DriverHealth {
  ok: boolean;
  detail: string;
}

export interface ProxyDriver {
  readonly name: 'process' | 'docker' | 'swarm';
  /**
   * Whether proxies keep running when api-backend stops, for the next start to adopt (containers
   * do); if not (child processes end with their parent), shutdown stops them itself.
   */
  readonly outlivesRelay: boolean;
  /**
   * Called once, after the manager exists (it may hear of proxies that died meanwhile): adopts what
   * a previous process left and starts following the engine. Never throws for an engine that is away.
   */
  start(): Promise<void>;
  /** Compares what runs with what should, and fixes the difference; also what the periodic sweep runs. */
  reconcile(): Promise<void>;
  /** Creates the owner's proxy and resolves once it answers. Callers serialise per owner. */
  create(ownerHash: string): Promise<ProxyHandle>;
  /** Stops and removes the owner's proxy and anything made for it; resolves quietly if absent. */
  remove(ownerHash: string): Promise<void>;
  inspect(ownerHash: string): Promise<ProxyHandle | null>;
  /**
   * Where the owner's running proxy listens, or null. Asked on every relayed request, so a driver
   * may answer from a short-lived cache it keeps true (endpoint-cache.ts); inspect never does.
   */
  endpoint(ownerHash: string): Promise<ProxyEndpoint | null>;
  /** A connection to the endpoint failed: the next `endpoint` call asks the record again. */
  forgetEndpoint(ownerHash: string): void;
  list(): Promise<ProxyHandle[]>;
  /** How many proxies run now, from what the driver already holds: never a call to what runs them. */
  running(): number;
  /** May be costly (engine calls): the relay's health monitor asks it on a timer, never per request. */
  health(): Promise<DriverHealth>;
  /** Releases the driver's own resources (event streams, child processes); never removes a proxy that outlives the relay. */
  close(): Promise<void>;
  /**
   * Hands a desktop's tunnel to the owner's running proxy as the socket itself, where the driver
   * can (a child process can be sent a socket, a container cannot); false: relay it to the endpoint.
   */
  handOffTunnel?(ownerHash: string, socket: Duplex, headers: Record<string, string | string[]>, head: Buffer, outcome: HandOffOutcome): boolean;
}

/**
 * Told by a driver when a proxy ended without being asked to (crash, OOM, killed). `exitId` names
 * that one exit where the engine is shared (the container id): every replica watching the engine
 * hears of it, and only the one that claims it (exit-claims.ts) reports it.
 */
export type ProxyExitListener = (ownerHash: string, detail: string, exitId?: string) => void;
