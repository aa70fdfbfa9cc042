/**
 * Scenario 7, memory per idle connected tunnel, on the server side (what the operator pays for):
 *
 *  - one more tunnel for a user who already has one (a second PC, say): growth of api-backend and
 *    of that user's streaming-proxy, divided by the number of tunnels added;
 *  - one more user: api-backend's growth per user plus the new user's whole proxy process, since
 *    each user gets a proxy of their own;
 *  - the peers, for comparison: sshd's session processes per `ssh -R`, and localtunnel-server's
 *    growth per tunnel.
 *
 * Resident memory (VmRSS) is read 2 s after the tunnels connected; garbage collection is not
 * forced, so small figures carry a few hundred KiB of noise each way.
 */
import type { BenchContext, Row, Scenario } from '../context';
import { round, sleep } from '../measure';
import { childPids, memoryOf } from '../procs';
import { startFleet, startRelayProcess } from '../relay';

const rss = (pid: number | undefined) => (pid === undefined ? Number.NaN : (memoryOf(pid)?.rssMb ?? Number.NaN));

export const idle: Scenario = {
  id: 'idle',
  title: '7. Memory per idle connected tunnel',
  async run(ctx: BenchContext) {
    const { tunnels, peerTunnels } = ctx.sizes.idle;
    const transport = ctx.relays[0]?.transport ?? 'ws';
    const rows: Row[] = [];
    const summary: Record<string, number> = {};

    ctx.log(`idle: ${tunnels} extra tunnels for one user over ${transport}`);
    // A fresh api-backend, so the baseline holds nothing else (--quick reuses the shared one).
    const relay = ctx.quick ? ctx.processRelay : await startRelayProcess({ driver: 'process' });
    try {
      const user = 'idle-user';
      const first = await startFleet(relay, [relay.token(user)], ctx.llm.url, transport, 1);
      await sleep(1500);
      const proxyPid = relay.proxyPid(user);
      const before = { api: rss(relay.proc.pid), proxy: rss(proxyPid), fleet: rss(first.proc.pid) };
      const more = await startFleet(relay, Array.from({ length: tunnels }, () => relay.token(user)), ctx.llm.url, transport, 10);
      await sleep(2000);
      const after = { api: rss(relay.proc.pid), proxy: rss(proxyPid), fleet: rss(more.proc.pid) };
      const n = more.connected;
      const apiPer = (after.api - before.api) / n;
      const proxyPer = (after.proxy - before.proxy) / n;
      rows.push(
        { route: `relay ${transport}/process`, measure: 'extra tunnel, same user: api-backend', 'KiB per tunnel': kib(apiPer), tunnels: n },
        { route: `relay ${transport}/process`, measure: 'extra tunnel, same user: streaming-proxy', 'KiB per tunnel': kib(proxyPer), tunnels: n },
        { route: `relay ${transport}/process`, measure: 'extra tunnel, same user: server side total', 'KiB per tunnel': kib(apiPer + proxyPer), tunnels: n },
        { route: `relay ${transport}/process`, measure: 'bridge side (the desktop, not the server)', 'KiB per tunnel': kib((after.fleet - before.fleet) / Math.max(1, n - 1)), tunnels: n },
      );
      summary.relayTunnelKiB = kib(apiPer + proxyPer);
      summary.apiBackendBaselineMiB = Math.round(before.api);
      await more.close();
      await first.close();

      const users = Math.max(3, Math.round(tunnels / 10));
      ctx.log(`idle: ${users} users, one tunnel and one proxy each`);
      await sleep(1000);
      const apiBefore = rss(relay.proc.pid);
      const known = new Set(childPids(relay.proc.pid));
      const fleet = await startFleet(relay, Array.from({ length: users }, (_, i) => relay.token(`idle-user-${i}`)), ctx.llm.url, transport, 5);
      await sleep(2000);
      const proxies = childPids(relay.proc.pid).filter((pid) => !known.has(pid));
      const proxyMean = proxies.reduce((sum, pid) => sum + rss(pid), 0) / Math.max(1, proxies.length);
      const apiPerUser = (rss(relay.proc.pid) - apiBefore) / fleet.connected;
      rows.push(
        { route: `relay ${transport}/process`, measure: 'new user: api-backend', 'KiB per tunnel': kib(apiPerUser), tunnels: fleet.connected },
        { route: `relay ${transport}/process`, measure: 'new user: their streaming-proxy process', 'KiB per tunnel': kib(proxyMean), tunnels: proxies.length },
        { route: `relay ${transport}/process`, measure: 'new user: server side total', 'KiB per tunnel': kib(apiPerUser + proxyMean), tunnels: fleet.connected },
      );
      summary.relayUserKiB = kib(apiPerUser + proxyMean);
      await fleet.close();
    } finally {
      if (relay !== ctx.processRelay) await relay.close();
    }

    if (ctx.ssh) {
      ctx.log(`idle: ${peerTunnels} extra ssh -R tunnels`);
      const m = await ctx.ssh.idleTunnelMemory(peerTunnels);
      rows.push({ route: 'ssh -R', measure: 'extra tunnel: sshd session processes', 'KiB per tunnel': kib(m.perTunnelMb), tunnels: m.count });
      summary.sshTunnelKiB = kib(m.perTunnelMb);
    }
    if (ctx.localtunnel) {
      ctx.log(`idle: ${peerTunnels} extra localtunnel tunnels`);
      const m = await ctx.localtunnel.idleTunnelMemory(peerTunnels);
      rows.push({ route: 'localtunnel', measure: 'extra tunnel: localtunnel-server', 'KiB per tunnel': kib(m.perTunnelMb), tunnels: m.count });
      summary.localtunnelTunnelKiB = kib(m.perTunnelMb);
    }
    return {
      status: 'ok' as const,
      columns: ['route', 'measure', 'KiB per tunnel', 'tunnels'],
      rows,
      notes: [
        `Our relay: ${tunnels} extra tunnels for one user, then ${Math.max(3, Math.round(tunnels / 10))} new users, on a fresh api-backend with the process driver. Peers: ${peerTunnels} extra tunnels each.`,
        'No direct counterpart: a direct call holds no tunnel. Compare the relay rows with the peers\'.',
        'Resident memory is read without forcing garbage collection, so a figure of a few KiB per tunnel, or a negative one, means "too small to see here", not a saving.',
        `For scale: api-backend itself was ${summary.apiBackendBaselineMiB ?? '?'} MiB resident with one tunnel connected (mostly, it seems, the embedded PGlite audit database, Postgres compiled to WebAssembly, used when DATABASE_URL is unset); each user's proxy process is the "new user" row.`,
      ],
      summary,
    };
  },
};

function kib(mib: number): number {
  return round(mib * 1024, 0);
}
