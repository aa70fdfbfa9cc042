/**
 * The process driver's memory limit, against real child processes: one that keeps allocating
 * Buffers (outside the JS heap, where --max-old-space-size does not reach) is killed once its
 * resident memory passes the budget and reported with reason `memory`; one within it is left be.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { Writable } from 'node:stream';
import winston from 'winston';
import { PROTOCOL_VERSION } from '@ctll/protocol';
import { MemoryWatchdog, readRssBytes, type WatchedChild } from '../src/proxy/memory-watchdog';
import { ProcessDriver } from '../src/proxy/process-driver';

const MIB = 1024 * 1024;
/** Allocates 8 MiB of Buffers every 20 ms, touching every page so they are resident. */
const HUNGRY = 'const keep = []; setInterval(() => keep.push(Buffer.alloc(8 * 1024 * 1024, 1)), 20);';

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

function start(code: string): ChildProcess {
  const child = spawn(process.execPath, ['-e', code], { stdio: 'ignore' });
  children.push(child);
  return child;
}

const exited = (child: ChildProcess) =>
  new Promise<NodeJS.Signals | null>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(child.signalCode);
    child.once('exit', (_code, signal) => resolve(signal));
  });

it('reads the resident memory of a live process, and null for one that is gone', async () => {
  const rss = await readRssBytes(process.pid);
  expect(rss).toBeGreaterThan(10 * MIB);
  expect(Math.abs(rss! - process.memoryUsage().rss)).toBeLessThan(16 * MIB);
  expect(await readRssBytes(2 ** 22 + 12345)).toBeNull();
});

it('kills a child that allocates past its budget outside the heap, and reports it once', async () => {
  const child = start(HUNGRY);
  const reports: Array<{ child: WatchedChild; rss: number }> = [];
  const watchdog = new MemoryWatchdog({
    limitBytes: 96 * MIB,
    intervalMs: 50,
    children: () => (child.pid !== undefined && child.exitCode === null ? [{ pid: child.pid, ownerHash: 'feedfacefeedface' }] : []),
    onOverLimit: (over, rss) => {
      reports.push({ child: over, rss });
      child.kill('SIGKILL');
    },
  });
  watchdog.start();
  try {
    expect(await exited(child)).toBe('SIGKILL');
  } finally {
    watchdog.stop();
  }
  expect(reports).toHaveLength(1);
  expect(reports[0].child.ownerHash).toBe('feedfacefeedface');
  expect(reports[0].rss).toBeGreaterThan(96 * MIB);
});

it('leaves a child within its budget alone', async () => {
  const child = start('setInterval(() => undefined, 1000);');
  let reported = false;
  const watchdog = new MemoryWatchdog({
    limitBytes: 512 * MIB,
    intervalMs: 20,
    children: () => [{ pid: child.pid!, ownerHash: 'feedfacefeedface' }],
    onOverLimit: () => (reported = true),
  });
  for (let round = 0; round < 10; round++) await watchdog.check();
  expect(reported).toBe(false);
  expect(child.exitCode).toBeNull();
});

it('the process driver kills a proxy over PROXY_MEMORY_MB and reports the exit as memory, logged as StreamingProxy', async () => {
  // A stand-in proxy program: says where it listens over IPC and answers /health in this
  // api-backend's protocol version, as the real one does, then keeps allocating.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-watchdog-'));
  const script = path.join(dir, 'hungry-proxy.js');
  const health = JSON.stringify({ status: 'ok', protocolVersion: PROTOCOL_VERSION });
  fs.writeFileSync(
    script,
    `let grown = false;\n` +
      `const server = require('node:http').createServer((req, res) => { res.end(${JSON.stringify(health)}); if (!grown) { grown = true; ${HUNGRY} } });\n` +
      `server.listen(0, '127.0.0.1', () => process.send({ type: 'listening', port: server.address().port }));\n`,
  );
  const lines: Array<Record<string, unknown>> = [];
  const logger = winston.createLogger({
    level: 'info',
    format: winston.format.json(),
    transports: [new winston.transports.Stream({ stream: new Writable({ write: (chunk, _enc, done) => (lines.push(JSON.parse(String(chunk))), done()) }) })],
  });
  const exits: Array<{ ownerHash: string; detail: string }> = [];
  const driver = new ProcessDriver({
    script,
    memoryMb: 96,
    memoryCheckMs: 50,
    startTimeoutMs: 10_000,
    env: () => ({}),
    secretFor: () => 's'.repeat(64),
    logger,
    onExit: (ownerHash, detail) => exits.push({ ownerHash, detail }),
  });
  try {
    const handle = await driver.create('0123456789abcdef');
    const pid = Number(handle.id);
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        if (exits.length > 0) {
          clearInterval(timer);
          resolve();
        }
      }, 20);
    });
    expect(exits).toEqual([{ ownerHash: '0123456789abcdef', detail: expect.stringMatching(/^killed: memory \(resident \d+ MiB over PROXY_MEMORY_MB=96\)$/) }]);
    expect(await readRssBytes(pid)).toBeNull();
    expect(await driver.inspect('0123456789abcdef')).toBeNull();
    expect(lines).toContainEqual(expect.objectContaining({ level: 'error', message: expect.stringContaining('StreamingProxy'), reason: 'memory', owner: '0123456789abcdef', limitMb: 96 }));
  } finally {
    await driver.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
