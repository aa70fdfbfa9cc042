/**
 * A program the tests run as a user would (the bridge's CLI, an installed `ctll-bridge`, the single
 * executable), with both output streams kept for assertions. Never spawnSync: the relay usually runs
 * in the test's own process and must keep answering while the program talks to it.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export interface Running {
  child: ChildProcess;
  /** Everything written so far: data only (the bridge's status lines go to stderr). */
  stdout(): string;
  stderr(): string;
  /** The exit code, or null when a signal ended it. */
  exited: Promise<number | null>;
}

export function runProgram(program: string, args: string[], options: SpawnOptions = {}): Running {
  const child = spawn(program, args, options);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => (stdout += chunk));
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}
