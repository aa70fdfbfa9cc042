import Docker from 'dockerode';
import { ServiceUnavailableError } from '@ctll/protocol';
import { classify, ignoringGone, imageMissing, toRelayError } from '../src/proxy/docker/errors';

/** Errors as dockerode builds them from the engine's answers (docker-modem's buildPayload). */
const engineError = (statusCode: number, message: string) => Object.assign(new Error(`(HTTP code ${statusCode}) - ${message}`), { statusCode, json: { message } });

describe('docker-errors', () => {
  it('tells the engine’s answers apart by status and words', () => {
    expect(classify(engineError(404, 'No such container: ctll-proxy-x'))).toBe('not-found');
    expect(classify(engineError(404, 'network ctll-net-x not found'))).toBe('not-found');
    expect(classify(engineError(404, 'No such image: ctll/streaming-proxy:latest'))).toBe('image-missing');
    // Leaving an overlay a swarm task already lost (the node's copy went with its last other task).
    expect(classify(engineError(500, 'container 6dba8e77 is not connected to the network ksdzixgahk9u'))).toBe('not-found');
    expect(classify(engineError(500, 'container 6dba8e77 is not connected to network ctll-net-x'))).toBe('not-found');
    expect(classify(engineError(500, 'network ux6l8lmo85vz not found'))).toBe('not-found');
    expect(classify(engineError(409, 'Conflict. The container name "/ctll-proxy-x" is already in use'))).toBe('conflict');
    expect(classify(engineError(409, 'removal of container x is already in progress'))).toBe('conflict');
    expect(classify(engineError(403, 'endpoint with name ctll-proxy-x already exists in network ctll-net-x'))).toBe('conflict');
    expect(classify(engineError(403, 'Pool overlaps with other one on this address space'))).toBe('pool-overlap');
    expect(classify(engineError(403, 'error while removing network: network ctll-net-x id 8db2 has active endpoints'))).toBe('active-endpoints');
    expect(classify(Object.assign(engineError(304, ''), { json: null }))).toBe('not-modified');
    expect(classify(engineError(500, 'something else'))).toBe('other');
  });

  it('sees an absent engine in a real dockerode call', async () => {
    const docker = new Docker({ socketPath: '/nonexistent/docker.sock' });
    const error = await docker.ping().catch((e: unknown) => e);
    expect(classify(error)).toBe('unreachable');
    const mapped = toRelayError(error, { action: 'ping', image: 'x' });
    expect(mapped).toBeInstanceOf(ServiceUnavailableError);
    expect(mapped).toMatchObject({ status: 503, code: 'docker_unavailable', message: expect.stringContaining('Docker engine unreachable') });
  });

  it('counts removing what is gone, or starting what runs, as done', async () => {
    await expect(ignoringGone(() => Promise.reject(engineError(404, 'No such container: x')))).resolves.toBeUndefined();
    await expect(ignoringGone(() => Promise.reject(Object.assign(engineError(304, ''), { json: null })))).resolves.toBeUndefined();
    await expect(ignoringGone(() => Promise.reject(engineError(500, 'boom')))).rejects.toMatchObject({ statusCode: 500 });
  });

  it('explains a missing image with the commands that build it', () => {
    const error = toRelayError(engineError(404, 'No such image: ctll/streaming-proxy:latest'), { action: 'create', image: 'ctll/streaming-proxy:latest' });
    expect(error).toMatchObject({ status: 503, code: 'proxy_image_missing' });
    expect(error.message).toContain('"ctll/streaming-proxy:latest"');
    expect(imageMissing('x').message).toMatch(/npm run docker:base-image.*BASE_IMAGE=ctll\/node-base:local npm run docker:build/);
  });

  it('keeps the engine’s words for anything else, as a 503 with the cause attached', () => {
    const cause = engineError(500, 'driver failed programming external connectivity');
    const error = toRelayError(cause, { action: 'start ctll-proxy-x', image: 'i' });
    expect(error).toMatchObject({ status: 503, code: 'docker_error', message: 'Docker could not start ctll-proxy-x: driver failed programming external connectivity' });
    expect(error.cause).toBe(cause);
  });
});
