import type Docker from 'dockerode';
import { planReconcile, type ReconcileInput } from '../src/proxy/docker/reconcile';
import { LABELS } from '../src/proxy/naming';

const NOW = Date.parse('2030-01-01T12:00:00Z');
const STARTED = NOW - 10_000;
const labels = (owner: string, createdMs: number) => ({ [LABELS.managed]: 'true', [LABELS.owner]: owner, [LABELS.created]: new Date(createdMs).toISOString() });
const container = (owner: string, State: string, createdMs = NOW - 3600_000) =>
  ({ Id: `id-${owner}`, State, Status: State === 'exited' ? 'Exited (137) 2 minutes ago' : 'Up', Created: createdMs / 1000, Labels: labels(owner, createdMs) }) as unknown as Docker.ContainerInfo;
const network = (owner: string, createdMs: number) => ({ Id: `net-${owner}`, Created: new Date(createdMs).toISOString(), Labels: labels(owner, createdMs) }) as unknown as Docker.NetworkInspectInfo;
const plan = (input: Partial<ReconcileInput>) =>
  planReconcile({ containers: [], networks: [], now: NOW, startedAt: STARTED, halfMadeAfterMs: 60_000, busy: () => false, ...input });

describe('planReconcile', () => {
  it('adopts running proxies and keeps their networks', () => {
    expect(plan({ containers: [container('a', 'running')], networks: [network('a', NOW - 3600_000)] })).toEqual({ adopt: [{ ownerHash: 'a', containerId: 'id-a' }], dead: [], halfMade: [] });
  });

  it('reports and removes proxies that exited or died', () => {
    const result = plan({ containers: [container('b', 'exited'), container('c', 'dead')] });
    expect(result.dead.map((d) => d.ownerHash)).toEqual(['b', 'c']);
    expect(result.dead[0].status).toMatch(/Exited \(137\)/);
  });

  it('removes a never-started container or bare network once old, or when a previous process made it', () => {
    const result = plan({
      containers: [container('old-created', 'created', NOW - 120_000), container('young-created', 'created', NOW - 1000)],
      networks: [network('bare-old', NOW - 120_000), network('bare-before-start', STARTED - 1000), network('bare-young', NOW - 1000)],
    });
    expect(result.halfMade.sort()).toEqual(['bare-before-start', 'bare-old', 'old-created']);
  });

  it('leaves owners alone while this process creates their proxy', () => {
    const result = plan({ containers: [container('busy', 'exited')], networks: [network('busy', NOW - 3600_000)], busy: (o) => o === 'busy' });
    expect(result).toEqual({ adopt: [], dead: [], halfMade: [] });
  });
});
