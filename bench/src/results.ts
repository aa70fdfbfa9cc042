/**
 * The record of one run: the machine, the routes (measured or why not), every scenario's raw
 * figures and ratios, and the targets. `--quick` runs write under bench/.tmp/ so that they never
 * replace the committed full results.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { RouteStatus, ScenarioResult } from './context';
import type { TargetResult } from './targets';

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  commit: string;
  /** 1-minute load average when the run began and ended: how busy the machine was with other work. */
  loadAverage?: { start: number; end: number };
}

export interface Results {
  schema: 1;
  mode: 'full' | 'quick';
  date: string;
  durationS: number;
  /** The bench's arguments for this run (`--only replicas --users 30`), when recorded. */
  args?: string;
  machine: Machine;
  routes: RouteStatus[];
  scenarios: ScenarioResult[];
  targets: TargetResult[];
}

export function machine(root: string): Machine {
  const cpus = os.cpus();
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, encoding: 'utf8' }).trim();
    if (dirty) commit += ' (with uncommitted changes)';
  } catch {
    // not a git checkout
  }
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 1024 ** 3),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    commit,
  };
}

/**
 * Takes the scenarios of another run (e.g. `--only replicas`) into these results, replacing any of
 * the same id, each with a note saying when, how and under what load it was measured.
 */
export function mergeScenarios(into: Results, from: Results): string[] {
  const load = from.machine.loadAverage ? `, 1-minute load average ${from.machine.loadAverage.start} → ${from.machine.loadAverage.end} on ${from.machine.cores} cores` : '';
  const ids: string[] = [];
  for (const scenario of from.scenarios.filter((s) => s.status !== 'skipped')) {
    const command = `node bench/run.mjs ${from.args ?? ''}`.trim();
    const note = `Measured separately from the rest of this file: ${from.date} with \`${command}\` (${scenario.durationS ?? '?'} s for this scenario), commit ${from.machine.commit}${load}.`;
    const merged = { ...scenario, notes: [...scenario.notes, note] };
    const at = into.scenarios.findIndex((s) => s.id === scenario.id);
    if (at >= 0) into.scenarios[at] = merged;
    else into.scenarios.push(merged);
    ids.push(scenario.id);
  }
  return ids;
}

export function writeResults(dir: string, results: Results, markdown: string): { json: string; md: string } {
  fs.mkdirSync(dir, { recursive: true });
  const json = path.join(dir, 'results.json');
  const md = path.join(dir, 'RESULTS.md');
  // NaN and Infinity are not JSON: a figure that could not be taken is null.
  fs.writeFileSync(json, `${JSON.stringify(results, (_key, value) => (typeof value === 'number' && !Number.isFinite(value) ? null : value), 2)}\n`);
  fs.writeFileSync(md, markdown);
  return { json, md };
}
