/**
 * Bundles swarm-container-mode.entry.ts and runs scripts as swarm tasks (runAsTask): overlay
 * addresses are reachable only from a container on the overlay, never from the host the tests run
 * on. The bundle lands under the repository's node_modules, where node inside the container finds
 * api-backend's dependencies (the repository is bind-mounted at the same path).
 */
import fs from 'node:fs';
import path from 'node:path';
import type Docker from 'dockerode';
import { build } from 'esbuild';
import { NODE_BASE_IMAGE } from './require-docker';

export const REPO = path.resolve(__dirname, '../..');
/** Where a stack replica finds its engine. */
export const SOCKET = '/var/run/docker.sock';

/** Writes the bundle of an entry beside this file (default swarm-container-mode.entry.ts); `dir` is the caller's to remove. */
export async function bundleSwarmEntry(source = 'swarm-container-mode.entry.ts'): Promise<{ dir: string; entry: string }> {
  const dir = fs.mkdtempSync(path.join(REPO, 'node_modules', '.ctll-swarm-'));
  const entry = path.join(dir, 'entry.js');
  const apiDeps = Object.keys(JSON.parse(fs.readFileSync(path.join(REPO, 'api-backend/package.json'), 'utf8')).dependencies as Record<string, string>);
  await build({
    entryPoints: [path.join(__dirname, source)],
    outfile: entry,
    bundle: true,
    platform: 'node',
    target: 'node20',
    logLevel: 'warning',
    external: [...apiDeps.filter((name) => !name.startsWith('@ctll/')), 'bufferutil', 'utf-8-validate'],
  });
  return { dir, entry };
}

/**
 * What the entry's result must show of two users' proxies: api-backend reaches both, each proxy
 * reaches itself and not the other, and each was told, before api-backend could join its overlay,
 * the address api-backend then got there.
 */
export function expectReachedAndApart(result: Record<string, unknown>): void {
  expect(result.fromBackend).toEqual([200, 200]);
  const [fromA, fromB] = result.fromTasks as Array<Array<number | string>>;
  expect([fromA[0], fromB[1]]).toEqual([200, 200]);
  expect(fromA[1]).not.toBe(200);
  expect(fromB[0]).not.toBe(200);
  for (const { told, joined } of result.addresses as Array<{ told: string; joined: string }>) {
    expect(told).toMatch(/^10\.\d+\.\d+\.\d+$/);
    expect(joined).toBe(told);
  }
}

/** The entry's one JSON line (its result, or `{error}`), from everything it printed. */
export function resultOf(output: string): Record<string, unknown> {
  return JSON.parse(output.split('\n').filter((line) => line.trim().startsWith('{')).pop() ?? '{}') as Record<string, unknown>;
}

const ENDED = new Set(['complete', 'failed', 'rejected', 'shutdown', 'orphaned', 'remove']);

interface Task {
  ID: string;
  Status: { State: string; Err?: string };
}

/** What a task gets bound in (default: its engine's socket, where a replica finds it), where it may run, and how many run. */
export interface TaskPlace {
  mounts?: Array<{ source: string; target: string }>;
  constraints?: string[];
  /** Replicas of the service (default 1), at most one per node when more (as a stack spreads api-backend). */
  replicas?: number;
}

/** How a task ended and what it printed. */
export interface TaskRun {
  state: string;
  output: string;
}

/**
 * Runs `node <args>` from the repository (bind-mounted at its own path) as a service (restart
 * none) with the engine's socket, as root (a stack replica has the socket's group), waits for its
 * task to end and returns what it printed.
 */
export async function runAsTask(engine: Docker, name: string, args: string[], env: string[], place: TaskPlace = {}): Promise<TaskRun> {
  return (await runAsTasks(engine, name, args, env, place))[0];
}

/** runAsTask for `place.replicas` tasks of one service; each task's logs come through the manager, wherever it ran. */
export async function runAsTasks(
  engine: Docker,
  name: string,
  args: string[],
  env: string[],
  { mounts = [{ source: SOCKET, target: SOCKET }], constraints = [], replicas = 1 }: TaskPlace = {},
): Promise<TaskRun[]> {
  const image = await engine.getImage(NODE_BASE_IMAGE).inspect();
  const service = await engine.createService({
    Name: name,
    Labels: { 'io.cloudtolocalllm.test': 'task-mode' },
    TaskTemplate: {
      ContainerSpec: {
        // By id: the engine never looks for an image id on a registry.
        Image: image.Id,
        Command: ['node', ...args],
        Env: env,
        User: '0:0',
        Mounts: [
          { Type: 'bind', Source: REPO, Target: REPO, ReadOnly: true },
          ...mounts.map(({ source, target }) => ({ Type: 'bind', Source: source, Target: target })),
        ],
      },
      RestartPolicy: { Condition: 'none' },
      Placement: { Constraints: constraints, ...(replicas > 1 ? { MaxReplicas: 1 } : {}) },
    },
    Mode: { Replicated: { Replicas: replicas } },
  } as unknown as Docker.CreateServiceOptions);
  const id = (service as unknown as { id?: string; ID?: string }).id ?? (service as unknown as { ID: string }).ID;
  const deadline = Date.now() + 200_000;
  let tasks: Task[];
  for (;;) {
    tasks = (await engine.listTasks({ filters: { service: [id] } })) as Task[];
    if (tasks.length >= replicas && tasks.every((task) => ENDED.has(task.Status.State))) break;
    if (Date.now() > deadline) throw new Error(`tasks of ${name} did not end: ${JSON.stringify(tasks.map((task) => task.Status))}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return Promise.all(
    tasks.map(async (task) => {
      // dockerode's types leave out Task#logs, which it has (GET /tasks/<id>/logs).
      const logs: unknown = await (engine.getTask(task.ID) as unknown as { logs(options: object): Promise<unknown> }).logs({ stdout: true, stderr: true });
      // Without a TTY the log is multiplexed: 8-byte frame headers before each chunk, dropped here.
      const output = (Buffer.isBuffer(logs) ? demux(logs) : String(logs)).trim();
      return { state: `${task.Status.State}${task.Status.Err ? `: ${task.Status.Err}` : ''}`, output };
    }),
  );
}

function demux(buffer: Buffer): string {
  const parts: Buffer[] = [];
  for (let at = 0; at + 8 <= buffer.length; ) {
    const size = buffer.readUInt32BE(at + 4);
    parts.push(buffer.subarray(at + 8, at + 8 + size));
    at += 8 + size;
  }
  return Buffer.concat(parts).toString('utf8');
}
