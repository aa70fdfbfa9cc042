import { PROTOCOL_VERSION } from '@ctll/protocol';
import { speaksOurProtocol } from '../src/proxy/docker/reconcile';
import { containerSpec, isOurs, managedFilter, networkSpec, SCOPE_LABEL, type ProxySpecOptions } from '../src/proxy/docker/spec';
import { LABELS } from '../src/proxy/naming';

const options: ProxySpecOptions = { scope: 'prod', image: 'ctll/streaming-proxy:latest', memoryMb: 512, cpus: 0.5, pidsLimit: 64, tmpfsMb: 16, stopGraceSeconds: 3, logMaxSize: '10m', logMaxFiles: 2, egress: 'internet' };

describe('docker-spec', () => {
  it('caps the V8 heap below the container memory limit', () => {
    const spec = containerSpec('0123456789abcdef', '10.200.0.16/28', { PROXY_SECRET: 's' }, options);
    expect(spec.Env).toEqual(expect.arrayContaining(['PROXY_SECRET=s', 'PORT=8080', 'NODE_OPTIONS=--max-old-space-size=384']));
    expect(spec.HostConfig).toMatchObject({ Memory: 512 * 1024 * 1024, MemorySwap: 512 * 1024 * 1024, NanoCpus: 500_000_000, NetworkMode: 'ctll-net-0123456789abcdef' });
  });

  it('makes the network internal only when egress is off, with the gateway at .1', () => {
    expect(networkSpec('0123456789abcdef', '10.200.0.16/28', options)).toMatchObject({ Internal: false, IPAM: { Config: [{ Subnet: '10.200.0.16/28', Gateway: '10.200.0.17' }] } });
    expect(networkSpec('0123456789abcdef', '10.200.0.16/28', { ...options, egress: 'none' }).Internal).toBe(true);
  });

  it('labels a proxy container with the protocol version this api-backend speaks, so a later sweep can tell', () => {
    const spec = containerSpec('0123456789abcdef', '10.200.0.16/28', {}, options);
    expect(spec.Labels?.[LABELS.protocol]).toBe(String(PROTOCOL_VERSION));
    expect(speaksOurProtocol(spec.Labels)).toBe(true);
    expect(networkSpec('0123456789abcdef', '10.200.0.16/28', options).Labels?.[LABELS.protocol]).toBeUndefined();
  });

  it('finds only its own scope', () => {
    expect(managedFilter('prod', 'proxy')).toEqual([`${LABELS.managed}=true`, `${SCOPE_LABEL}=prod`, `${LABELS.role}=proxy`]);
    expect(isOurs({ [LABELS.managed]: 'true', [SCOPE_LABEL]: 'prod' }, 'prod')).toBe(true);
    expect(isOurs({ [LABELS.managed]: 'true', [SCOPE_LABEL]: 'test-1' }, 'prod')).toBe(false);
    expect(isOurs(undefined, 'prod')).toBe(false);
  });
});
