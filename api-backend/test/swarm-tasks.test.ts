import type Docker from 'dockerode';
import { loadConfig } from '../src/config';
import { planReconcile } from '../src/proxy/docker/reconcile';
import { PROTOCOL_VERSION } from '@ctll/protocol';
import { LABELS } from '../src/proxy/naming';
import { asContainers, type SwarmTask } from '../src/proxy/swarm-tasks';

const NOW = Date.parse('2030-01-01T12:00:00Z');
const OLD = new Date(NOW - 3600_000).toISOString();
const service = (owner: string) => ({ ID: `svc-${owner}`, CreatedAt: OLD, Spec: { Labels: { [LABELS.managed]: 'true', [LABELS.owner]: owner, [LABELS.created]: OLD, [LABELS.protocol]: String(PROTOCOL_VERSION) } } }) as unknown as Docker.Service;
const task = (owner: string, state: string, createdAt: string, extra: Partial<SwarmTask['Status']> = {}): SwarmTask => ({
  ID: `task-${owner}-${createdAt}`,
  ServiceID: `svc-${owner}`,
  CreatedAt: createdAt,
  DesiredState: 'running',
  Status: { State: state, ContainerStatus: { ContainerID: `ctr-${owner}-${state}` }, ...extra },
});

describe('swarm services under the docker reconcile rules', () => {
  const plan = (services: Docker.Service[], tasks: SwarmTask[]) =>
    planReconcile({ containers: asContainers(services, tasks), networks: [], now: NOW, halfMadeAfterMs: 60_000, busy: () => false });

  it("adopts a service whose newest task runs, whatever its older tasks' fate", () => {
    const result = plan([service('a')], [task('a', 'failed', OLD), task('a', 'running', new Date(NOW - 60_000).toISOString())]);
    expect(result).toEqual({ adopt: [{ ownerHash: 'a', containerId: 'ctr-a-running' }], retire: [], dead: [], halfMade: [] });
  });

  it('reports a service whose task ended as dead, with the engine reason', () => {
    const result = plan([service('b')], [task('b', 'failed', OLD, { Err: 'task: non-zero exit (137)', ContainerStatus: { ContainerID: 'ctr-b', ExitCode: 137 } })]);
    expect(result.dead).toEqual([{ ownerHash: 'b', containerId: 'ctr-b', status: 'task failed (exit code 137): task: non-zero exit (137)' }]);
  });

  it('removes an old service that never got a running task', () => {
    expect(plan([service('c')], [task('c', 'pending', OLD)]).halfMade).toEqual(['c']);
    expect(plan([service('d')], []).halfMade).toEqual(['d']);
  });
});

describe('PROXY_PLACEMENT', () => {
  const defaults = { proxyScript: '/tmp/proxy.js' };

  it('reads comma-separated constraints, and none by default', () => {
    expect(loadConfig({ PROXY_DRIVER: 'swarm' }, defaults).proxy.placement).toEqual([]);
    expect(loadConfig({ PROXY_DRIVER: 'swarm', PROXY_PLACEMENT: 'node.labels.ctll-proxies==true, node.role!=manager' }, defaults).proxy.placement).toEqual([
      'node.labels.ctll-proxies==true',
      'node.role!=manager',
    ]);
  });

  it('refuses something that is no constraint, naming the setting', () => {
    expect(() => loadConfig({ PROXY_PLACEMENT: 'workers only' }, defaults)).toThrow(/PROXY_PLACEMENT/);
  });
});
