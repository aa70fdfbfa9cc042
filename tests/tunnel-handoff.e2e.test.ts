/**
 * Under the process driver a desktop's WebSocket tunnel is handed to the user's proxy as the
 * socket itself (api-backend/src/proxy/tunnel-handoffs.ts): no byte of it passes through
 * api-backend. Checked where it shows: the kernel's socket table says which process holds the
 * server end of the desktop's connection to api-backend's port (the proxy, not api-backend, which
 * runs in this test process), and the tunnel still does everything a tunnel does: it carries
 * requests, it is counted, and it goes when its proxy goes (the bridge then dials in again).
 */
import fs from 'node:fs';
import { userHash } from '../api-backend/src/proxy/naming';
import { startLayout, waitFor, type Layout } from './helpers/layout';

/** Established TCP connections to 127.0.0.1:`port`, as the socket inodes of their two ends (/proc/net/tcp). */
function connectionsTo(port: number): Array<{ server: string; client: string }> {
  const hex = (p: number) => p.toString(16).toUpperCase().padStart(4, '0');
  const ends = new Map<string, string>(); // "local>remote" -> inode
  for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    // sl, local address, remote address, state (01 = ESTABLISHED), ..., inode tenth
    if (fields.length > 9 && fields[3] === '01') ends.set(`${fields[1]}>${fields[2]}`, fields[9]);
  }
  const server = `0100007F:${hex(port)}`;
  const found: Array<{ server: string; client: string }> = [];
  for (const [key, inode] of ends) {
    const [local, remote] = key.split('>');
    const client = local === server ? ends.get(`${remote}>${local}`) : undefined;
    if (client) found.push({ server: inode, client });
  }
  return found;
}

/** Socket inodes a process holds open. */
function socketsOf(pid: number): Set<string> {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match) inodes.add(match[1]);
    } catch {
      // closed while we read
    }
  }
  return inodes;
}

async function proxyPid(layout: Layout, userId: string): Promise<number> {
  const handle = await layout.relay.manager.driver.inspect(userHash(userId));
  if (!handle || handle.state !== 'running') throw new Error(`no running proxy for ${userId}`);
  return Number(handle.id);
}

describe('a WebSocket tunnel handed to a child proxy', () => {
  let layout: Layout;

  beforeEach(async () => {
    layout = await startLayout({ driver: 'process', transport: 'ws' });
  });

  afterEach(async () => {
    await layout.close();
  });

  it("is held by the user's proxy, not by api-backend, and carries the user's requests", async () => {
    await layout.connectBridge('handoff-alice');
    const pid = await proxyPid(layout, 'handoff-alice');
    // The desktop's connection: its client end is the bridge's (in this process), its server end
    // the proxy's alone. Relayed, api-backend (also this process) would hold the server end.
    const mine = socketsOf(process.pid);
    const tunnels = connectionsTo(layout.relay.port).filter((connection) => socketsOf(pid).has(connection.server));
    expect(tunnels).toHaveLength(1);
    expect(mine.has(tunnels[0].client)).toBe(true);
    expect(mine.has(tunnels[0].server)).toBe(false);

    const answer = await layout.fetchAs('handoff-alice', '/api/chat', { method: 'POST', body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }) });
    expect(answer.status).toBe(200);
    expect(await answer.text()).toContain('"done":true');

    const metrics = await (await fetch(`${layout.relay.metricsUrl}/metrics`)).text();
    expect(metrics).toMatch(/ctll_tunnel_upgrades_total\{result="accepted"\} 1\b/);
    expect(metrics).toMatch(/ctll_tunnels_open 1\b/);
  });

  it('ends with its proxy, and the bridge dials in again to a new one that holds the new tunnel', async () => {
    const bridge = await layout.connectBridge('handoff-bob');
    const first = await proxyPid(layout, 'handoff-bob');
    process.kill(first, 'SIGKILL');
    await waitFor(async () => {
      const handle = await layout.relay.manager.driver.inspect(userHash('handoff-bob'));
      return handle?.state === 'running' && Number(handle.id) !== first && bridge.connected;
    }, 20_000, 'the bridge to reconnect to a new proxy');
    const second = await proxyPid(layout, 'handoff-bob');
    const heldBySecond = () => connectionsTo(layout.relay.port).filter((connection) => socketsOf(second).has(connection.server));
    await waitFor(() => heldBySecond().length === 1, 10_000, 'the new proxy to hold the desktop connection');
    expect(socketsOf(process.pid).has(heldBySecond()[0].server)).toBe(false);

    const answer = await layout.fetchAs('handoff-bob', '/api/tags');
    expect(answer.status).toBe(200);
  });
});
