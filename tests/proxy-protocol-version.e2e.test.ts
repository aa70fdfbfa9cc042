/**
 * api-backend and its proxies speak one protocol version: a proxy reports it in GET /health, and
 * api-backend uses a proxy only if it speaks its own. Here a real streaming-proxy process claims
 * another version (TEST_PROTOCOL_VERSION, part of the proxy's validated environment) under the
 * process driver: its start is refused, it is not left running, and its user's requests are
 * answered with the catalogue's 503 instead of going through a proxy that may misread them.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PROTOCOL_VERSION, proxyHealthSchema } from '@ctll/protocol';
import { PROXY_SCRIPT, startLayout, type Layout } from './helpers/layout';

/** A PROXY_SCRIPT that runs the real bundle with TEST_PROTOCOL_VERSION set (the driver passes no other environment). */
function proxyClaiming(dir: string, version: string): string {
  const file = path.join(dir, `proxy-speaking-${version}.cjs`);
  fs.writeFileSync(file, `process.env.TEST_PROTOCOL_VERSION = ${JSON.stringify(version)};\nrequire(${JSON.stringify(PROXY_SCRIPT)});\n`);
  return file;
}

/** Processes of ours (children of this test process's tree) whose command line names `script`. */
function processesRunning(script: string): number[] {
  return fs
    .readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(script);
      } catch {
        return false;
      }
    })
    .map(Number);
}

async function startProxyAs(layout: Layout, user: string): Promise<{ status: number; body: { error?: { code: string; message: string } } }> {
  const res = await fetch(`${layout.relay.url}/api/proxy/start`, { method: 'POST', headers: { authorization: `Bearer ${layout.token(user)}` } });
  return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string } } };
}

describe('the api-backend/proxy protocol version', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-proxy-version-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('refuses a proxy that speaks another version: its start fails with 503 and the process does not stay', async () => {
    const script = proxyClaiming(dir, String(PROTOCOL_VERSION + 1));
    const layout = await startLayout({ env: { PROXY_SCRIPT: script } });
    try {
      const started = await startProxyAs(layout, 'newer-proxy-user');
      expect(started.status).toBe(503);
      expect(started.body.error?.code).toBe('proxy_start_failed');
      // The body stays generic; the version and what to upgrade go to the operator's log.
      expect(started.body.error?.message).not.toMatch(/protocol|PROXY_SCRIPT/);
      const relayed = await layout.fetchAs('newer-proxy-user', '/api/tags');
      expect(relayed.status).toBe(503);
      expect(processesRunning(script)).toEqual([]);
    } finally {
      await layout.close();
    }
  });

  it('uses a proxy that speaks its version (the same wrapper, claiming this version)', async () => {
    const script = proxyClaiming(dir, String(PROTOCOL_VERSION));
    const layout = await startLayout({ env: { PROXY_SCRIPT: script } });
    try {
      const started = await startProxyAs(layout, 'current-proxy-user');
      expect(started.status).toBe(201);
      expect(processesRunning(script)).toHaveLength(1);
    } finally {
      await layout.close();
    }
  });

  it('a proxy reports the version it speaks in GET /health, and refuses to start with an override that is not a version', async () => {
    const env = { PATH: process.env.PATH, PORT: '0', HOST: '127.0.0.1', PROXY_SECRET: 'x'.repeat(32), LOG_LEVEL: 'error' };
    const proxy = spawn(process.execPath, [PROXY_SCRIPT], { env, stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        proxy.on('message', (message: { type?: string; port?: number }) => message.type === 'listening' && resolve(message.port!));
        proxy.once('exit', (code) => reject(new Error(`proxy exited (${code})`)));
      });
      const health = proxyHealthSchema.parse(await (await fetch(`http://127.0.0.1:${port}/health`)).json());
      expect(health.protocolVersion).toBe(PROTOCOL_VERSION);
    } finally {
      proxy.kill();
    }

    const bad = spawn(process.execPath, [PROXY_SCRIPT], { env: { ...env, TEST_PROTOCOL_VERSION: 'two' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    bad.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const code = await new Promise<number | null>((resolve) => bad.once('exit', resolve));
    expect(code).toBe(78);
    expect(stderr).toMatch(/TEST_PROTOCOL_VERSION/);
  });
});
