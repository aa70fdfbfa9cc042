/**
 * docker-stack.yml as `./deploy.sh --swarm` hands it to the engine: `docker stack config` (the
 * docker CLI's own stack loader, the one `docker stack deploy` uses) renders it with the values an
 * .env gives, and the rendered stack says what README promises: api-backend replicated on managers
 * with the swarm driver and its hardening, nginx in front of every replica by name (no virtual IP,
 * which needs IPVS) with the client's address kept (host-mode ports), nothing else published, and the stateful parts pinned
 * to the edge node. A missing secret is refused before anything is deployed.
 *
 * Needs only the docker CLI; without it the suite is skipped with one line, and under
 * CTLL_REQUIRE_DOCKER=1 (CI) it fails instead.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { load } from 'js-yaml';
import { describeIf } from '../helpers/requirement';

const REPO = path.resolve(__dirname, '../..');
const ENV = {
  DOMAIN: 'relay.test',
  POSTGRES_PASSWORD: 'stack-file-test-password',
  PROXY_SECRET_KEY: 'ab'.repeat(32),
  DOCKER_GID: '990',
  PROXY_PLACEMENT: 'node.labels.ctll-proxies==true',
};

interface StackService {
  image?: string;
  environment?: Record<string, string>;
  deploy?: { replicas?: number; endpoint_mode?: string; placement?: { constraints?: string[] }; update_config?: { order?: string } };
  ports?: { target: number; published: number | string; mode?: string }[];
  networks?: Record<string, unknown>;
  user?: string;
  read_only?: boolean;
  cap_drop?: string[];
  volumes?: { type: string; target: string; source?: string }[];
}

function stackConfig(env: Record<string, string>): { status: number | null; stdout: string; stderr: string } {
  // Only the given settings: nothing of the runner's environment may fill a ${...} in the file.
  const run = spawnSync('docker', ['stack', 'config', '-c', 'docker-stack.yml'], {
    cwd: REPO,
    encoding: 'utf8',
    timeout: 30_000,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...env },
  });
  return { status: run.status, stdout: run.stdout ?? '', stderr: `${run.stderr ?? ''}${run.error ? run.error.message : ''}` };
}

const probe = spawnSync('docker', ['stack', 'config', '--help'], { encoding: 'utf8', timeout: 10_000 });
const missing = probe.status === 0 ? undefined : 'the docker CLI with `docker stack config` is not installed';

describeIf({ needs: 'the docker CLI', requireVar: 'CTLL_REQUIRE_DOCKER' }, missing, 'docker-stack.yml as docker stack deploy reads it', () => {
  let services: Record<string, StackService>;

  beforeAll(() => {
    const rendered = stackConfig(ENV);
    if (rendered.status !== 0) throw new Error(`docker stack config refused docker-stack.yml:\n${rendered.stderr}`);
    services = (load(rendered.stdout) as { services: Record<string, StackService> }).services;
  });

  it('runs two api-backend replicas on managers with the swarm driver, rolling one at a time', () => {
    const api = services['api-backend'];
    expect(api.deploy?.replicas).toBe(2);
    expect(api.deploy?.placement?.constraints).toEqual(['node.role == manager']);
    // Two tasks of one slot would share an address on users' overlays (swarm-addresses.ts).
    expect(api.deploy?.update_config?.order).toBe('stop-first');
    expect(api.environment).toMatchObject({
      NODE_ENV: 'production',
      PROXY_DRIVER: 'swarm',
      PROXY_NETWORK_MODE: 'container',
      PROXY_PLACEMENT: ENV.PROXY_PLACEMENT,
      PROXY_SECRET_KEY: ENV.PROXY_SECRET_KEY,
      DATABASE_URL: `postgres://ctll:${ENV.POSTGRES_PASSWORD}@postgres:5432/ctll`,
    });
  });

  it('keeps api-backend hardened as under compose: uid 1001 with the socket group, read-only root, no capabilities', () => {
    const api = services['api-backend'];
    expect(api.user).toBe(`1001:${ENV.DOCKER_GID}`);
    expect(api.read_only).toBe(true);
    expect(api.cap_drop).toEqual(['ALL']);
    expect(api.volumes).toEqual(expect.arrayContaining([expect.objectContaining({ type: 'tmpfs', target: '/tmp' })]));
  });

  it('puts nginx in front of every replica by name (no virtual IP, re-resolved), publishing 80 and 443 in host mode and nothing else published', () => {
    const nginx = services.nginx;
    expect(nginx.environment?.UPSTREAM).toBe('api-backend:8080 resolve');
    expect(nginx.volumes).toEqual(expect.arrayContaining([expect.objectContaining({ target: '/etc/nginx/conf.d/ctll-stack-resolver.conf' })]));
    expect(nginx.ports?.map((p) => [p.target, Number(p.published), p.mode])).toEqual([
      [80, 80, 'host'],
      [443, 443, 'host'],
    ]);
    const publishing = Object.entries(services).filter(([, s]) => (s.ports ?? []).length > 0).map(([name]) => name);
    expect(publishing).toEqual(['nginx']);
  });

  it("gives no service a virtual IP, which needs the kernel's IPVS: api-backend and postgres resolve to their tasks (dnsrr)", () => {
    expect(services['api-backend'].deploy?.endpoint_mode).toBe('dnsrr');
    expect(services.postgres.deploy?.endpoint_mode).toBe('dnsrr');
  });

  it('lets an nginx older than 1.27.3 keep the addresses it resolved at start (NGINX_UPSTREAM_RESOLVE empty)', () => {
    const rendered = stackConfig({ ...ENV, NGINX_UPSTREAM_RESOLVE: '' });
    expect(rendered.status).toBe(0);
    const nginx = (load(rendered.stdout) as { services: Record<string, StackService> }).services.nginx;
    expect(nginx.environment?.UPSTREAM?.trim()).toBe('api-backend:8080');
  });

  it('pins nginx, certbot and postgres to the edge node that holds their files and volume', () => {
    for (const name of ['nginx', 'certbot', 'postgres']) {
      expect([name, services[name].deploy?.placement?.constraints]).toEqual([name, ['node.labels.ctll-edge == true']]);
    }
  });

  it('refuses to render without PROXY_SECRET_KEY, which every replica needs to reach proxies another made', () => {
    const { PROXY_SECRET_KEY: _omitted, ...withoutKey } = ENV;
    const rendered = stackConfig(withoutKey);
    expect(rendered.status).not.toBe(0);
    expect(rendered.stderr).toContain('set PROXY_SECRET_KEY in .env');
  });
});
