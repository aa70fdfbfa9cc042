import type Docker from 'dockerode';
import { planReconcile, type ReconcileInput } from '../src/proxy/docker/reconcile';
import { PROTOCOL_VERSION } from '@ctll/protocol';
import { LABELS } from '../src/proxy/naming';

const NOW = Date.parse('2030-01-01T12:00:00Z');
const CURRENT = String(PROTOCOL_VERSION);
const labels = (owner: string, createdMs: number) => ({ [LABELS.managed]: 'true', [LABELS.owner]: owner, [LABELS.created]: new Date(createdMs).toISOString() });
/** A proxy container; `protocol` is its protocol label (null: made before the label existed). */
const container = (owner: string, State: string, createdMs = NOW - 3600_000, protocol: string | null = CURRENT) =>
  ({
    Id: `id-${owner}`,
    State,
    Status: State === 'exited' ? 'Exited (137) 2 minutes ago' : 'Up',
    Created: createdMs / 1000,
    Labels: { ...labels(owner, createdMs), ...(protocol === null ? {} : { [LABELS.protocol]: protocol }) },
  }) as unknown as Docker.ContainerInfo;
const network = (owner: string, createdMs: number) => ({ Id: `net-${owner}`, Created: new Date(createdMs).toISOString(), Labels: labels(owner, createdMs) }) as unknown as Docker.NetworkInspectInfo;
const plan = (input: Partial<ReconcileInput>) =>
  planReconcile({ containers: [], networks: [], now: NOW, halfMadeAfterMs: 60_000, busy: () => false, ...input });

describe('planReconcile', () => {
  it('adopts running proxies and keeps their networks', () => {
    expect(plan({ containers: [container('a', 'running')], networks: [network('a', NOW - 3600_000)] })).toEqual({ adopt: [{ ownerHash: 'a', containerId: 'id-a' }], retire: [], dead: [], halfMade: [] });
  });

  it('reports and removes proxies that exited or died', () => {
    const result = plan({ containers: [container('b', 'exited'), container('c', 'dead')] });
    expect(result.dead.map((d) => d.ownerHash)).toEqual(['b', 'c']);
    expect(result.dead[0].status).toMatch(/Exited \(137\)/);
  });

  it('leaves a container that is being removed, and its network, to whoever removes it', () => {
    expect(plan({ containers: [container('going', 'removing')], networks: [network('going', NOW - 3600_000)] })).toEqual({ adopt: [], retire: [], dead: [], halfMade: [] });
  });

  it('removes a never-started container or bare network once older than halfMadeAfterMs, not before', () => {
    const result = plan({
      containers: [container('old-created', 'created', NOW - 120_000), container('young-created', 'created', NOW - 1000)],
      networks: [network('bare-old', NOW - 120_000), network('bare-at-limit', NOW - 60_000), network('bare-young', NOW - 59_000)],
    });
    // A young one may be another replica's create in flight, however recently this process started.
    expect(result.halfMade.sort()).toEqual(['bare-at-limit', 'bare-old', 'old-created']);
  });

  it('leaves owners alone while this process creates their proxy', () => {
    const result = plan({ containers: [container('busy', 'exited')], networks: [network('busy', NOW - 3600_000)], busy: (o) => o === 'busy' });
    expect(result).toEqual({ adopt: [], retire: [], dead: [], halfMade: [] });
  });

  it('retires running proxies labelled with an older protocol version instead of adopting them', () => {
    const older = String(PROTOCOL_VERSION - 1);
    const result = plan({ containers: [container('current', 'running'), container('older', 'running', NOW - 3600_000, older), container('garbled', 'running', NOW - 3600_000, 'v?')] });
    expect(result.adopt).toEqual([{ ownerHash: 'current', containerId: 'id-current' }]);
    expect(result.retire).toEqual([
      { ownerHash: 'older', containerId: 'id-older', protocol: older },
      { ownerHash: 'garbled', containerId: 'id-garbled', protocol: 'v?' },
    ]);
  });

  it('neither adopts nor retires a proxy a newer replica made during a rolling upgrade', () => {
    const result = plan({ containers: [container('newer', 'running', NOW - 3600_000, String(PROTOCOL_VERSION + 1))] });
    expect(result).toEqual({ adopt: [], retire: [], dead: [], halfMade: [] });
  });

  it('retires running proxies made before protocol labels existed, since nobody checked what they speak', () => {
    const result = plan({ containers: [container('unlabelled', 'running', NOW - 3600_000, null)] });
    expect(result).toEqual({ adopt: [], retire: [{ ownerHash: 'unlabelled', containerId: 'id-unlabelled', protocol: undefined }], dead: [], halfMade: [] });
  });

  it('reports an unlabelled proxy that died as dead, not as one to retire', () => {
    const result = plan({ containers: [container('old-dead', 'exited', NOW - 3600_000, null)] });
    expect(result.retire).toEqual([]);
    expect(result.dead.map((d) => d.ownerHash)).toEqual(['old-dead']);
  });

  it('never retires a proxy of another version while this process creates that owner a new one', () => {
    const result = plan({ containers: [container('busy', 'running', NOW - 3600_000, null)], busy: (o) => o === 'busy' });
    expect(result).toEqual({ adopt: [], retire: [], dead: [], halfMade: [] });
  });
});
