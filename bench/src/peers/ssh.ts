/**
 * Peer: an OpenSSH reverse tunnel, what a self-hoster would otherwise run to their VPS:
 * `ssh -N -R 127.0.0.1:<port>:127.0.0.1:<llm> user@vps`. Web clients call the forwarded port on
 * the "VPS" (sshd's side); sshd carries each connection over the SSH session to the ssh client,
 * which connects to the LLM server.
 *
 * The bench runs its own throwaway sshd (Debian's openssh-server) on a free high port bound to
 * 127.0.0.1, with a host key, a user key and a config made in a temporary directory, and removes
 * all of it at the end. Missing tools make the peer unavailable with the reason, never a failure.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Route } from '../http-client';
import { sleep, waitUntil } from '../measure';
import { childPids, freePort, memoryOf, portOpen, startProcess, type Started } from '../procs';

export interface SshPeer {
  route: Route;
  /** Opens `count` more idle reverse tunnels; returns the server side's memory per tunnel (MiB). */
  idleTunnelMemory(count: number): Promise<{ perTunnelMb: number; count: number }>;
  close(): Promise<void>;
}

const SSHD_CANDIDATES = ['/usr/sbin/sshd', '/usr/bin/sshd'];

/** Why the peer cannot run here, or undefined when it can. */
export function sshUnavailable(): string | undefined {
  if (!SSHD_CANDIDATES.some((file) => fs.existsSync(file))) {
    return 'sshd not found: install Debian\'s openssh-server (apt-get install -y openssh-server) to measure this peer';
  }
  for (const tool of ['ssh', 'ssh-keygen']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `${tool} not found: install Debian's openssh-client`;
    }
  }
  return undefined;
}

/**
 * `dial`: the port the ssh client connects to, given sshd's (bench/src/delayed-link.ts puts a
 * round trip between them); by default sshd's own.
 */
export async function startSshPeer(llmPort: number, dial: (sshdPort: number) => Promise<number> = async (port) => port): Promise<SshPeer> {
  const sshd = SSHD_CANDIDATES.find((file) => fs.existsSync(file))!;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctll-bench-ssh-'));
  const user = os.userInfo().username;
  const keygen = (file: string) => execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'ctll-bench', '-f', file], { stdio: 'ignore' });
  keygen(path.join(dir, 'host_key'));
  keygen(path.join(dir, 'user_key'));
  fs.copyFileSync(path.join(dir, 'user_key.pub'), path.join(dir, 'authorized_keys'));
  // Run as root, sshd needs its privilege-separation directory; Debian creates it only at boot.
  if (process.getuid?.() === 0 && !fs.existsSync('/run/sshd')) fs.mkdirSync('/run/sshd', { mode: 0o755 });

  const sshdPort = await freePort();
  fs.writeFileSync(
    path.join(dir, 'sshd_config'),
    [
      `Port ${sshdPort}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${path.join(dir, 'host_key')}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      'PermitRootLogin prohibit-password',
      'UsePAM no',
      'StrictModes no',
      'AllowTcpForwarding yes',
      'GatewayPorts no',
      'PermitTTY no',
      'X11Forwarding no',
      'MaxSessions 1000',
      'MaxStartups 1000',
      'LogLevel ERROR',
      '',
    ].join('\n'),
  );
  const daemon = startProcess(sshd, ['-D', '-e', '-f', path.join(dir, 'sshd_config')]);
  const tunnels: Started[] = [];
  const cleanup = async () => {
    await Promise.all(tunnels.map((tunnel) => tunnel.stop('SIGTERM', 2000)));
    await daemon.stop('SIGTERM', 3000);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitUntil(async () => {
      if (daemon.child.exitCode !== null) throw new Error(`sshd exited: ${daemon.tail()}`);
      return (await portOpen(sshdPort)) ? true : undefined;
    }, 10_000, 'sshd to listen');

    const clientPort = await dial(sshdPort);
    const openTunnel = async (): Promise<number> => {
      const port = await freePort();
      const tunnel = startProcess('ssh', [
        '-N',
        '-T',
        '-o', 'BatchMode=yes',
        '-o', 'StrictHostKeyChecking=no',
        '-o', `UserKnownHostsFile=${path.join(dir, 'known_hosts')}`,
        '-o', 'ExitOnForwardFailure=yes',
        '-o', 'ServerAliveInterval=15',
        '-i', path.join(dir, 'user_key'),
        '-p', String(clientPort),
        '-R', `127.0.0.1:${port}:127.0.0.1:${llmPort}`,
        `${user}@127.0.0.1`,
      ]);
      tunnels.push(tunnel);
      await waitUntil(async () => {
        if (tunnel.child.exitCode !== null) throw new Error(`ssh -R exited: ${tunnel.tail()}`);
        return (await portOpen(port)) ? true : undefined;
      }, 15_000, 'the ssh reverse tunnel to listen');
      return port;
    };

    const port = await openTunnel();
    const sessionPids = () => childPids(daemon.pid).flatMap((pid) => [pid, ...childPids(pid)]);
    return {
      route: { id: 'ssh -R', kind: 'peer', host: '127.0.0.1', port, prefix: '', headers: {} },
      async idleTunnelMemory(count: number) {
        await sleep(500);
        const rss = () => sessionPids().reduce((sum, pid) => sum + (memoryOf(pid)?.rssMb ?? 0), memoryOf(daemon.pid)?.rssMb ?? 0);
        const before = rss();
        for (let i = 0; i < count; i++) await openTunnel();
        await sleep(1000);
        return { perTunnelMb: (rss() - before) / count, count };
      },
      close: cleanup,
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
