/**
 * The docker driver's endpoint lookup, asked on every relayed request, against a real engine: it
 * answers from its cache instead of asking dockerd each time, and never hands out a proxy the
 * engine has reported dead or that was removed. The driver talks to the engine through a counting
 * relay on a unix socket, so the test sees every request it makes.
 */
import type { DockerDriver } from '../../api-backend/src/proxy/docker-driver';
import { containerName } from '../../api-backend/src/proxy/naming';
import { describeDocker } from './require-docker';
import { countingEngine, type CountingEngine } from './counting-engine';
import { docker, randomOwner, removeOwners, testDriver, waitFor, type Exit } from './support';

jest.setTimeout(60_000);

describeDocker('docker driver: endpoint lookups for relayed requests', () => {
  const used = new Set<string>();
  let engine: CountingEngine;
  let driver: DockerDriver;
  let exits: Exit[];

  beforeAll(async () => {
    engine = await countingEngine();
    // A long cache life, so only the driver's invalidation can explain a fresh answer.
    ({ driver, exits } = testDriver({ dockerOptions: { socketPath: engine.socketPath }, endpointCacheMs: 60_000 }));
    await driver.start();
  });
  afterAll(async () => {
    await driver?.close();
    await engine?.close();
    await removeOwners(used);
  });

  const started = async (): Promise<string> => {
    const owner = randomOwner();
    used.add(owner);
    await driver.create(owner);
    return owner;
  };

  it('answers repeated lookups of a running proxy without asking the engine again', async () => {
    const owner = await started();
    const handle = await driver.inspect(owner);
    const first = await driver.endpoint(owner);
    expect(first).toEqual(handle!.endpoint);
    const asked = engine.inspects(containerName(owner));
    for (let i = 0; i < 50; i += 1) expect(await driver.endpoint(owner)).toEqual(first);
    expect(engine.inspects(containerName(owner))).toBe(asked);
    // inspect itself always reads the engine.
    await driver.inspect(owner);
    expect(engine.inspects(containerName(owner))).toBe(asked + 1);
  });

  it('never hands out a proxy the engine reported dead', async () => {
    const owner = await started();
    expect(await driver.endpoint(owner)).not.toBeNull();
    await docker.getContainer(containerName(owner)).kill();
    await waitFor(() => exits.some((e) => e.ownerHash === owner), 10_000, 'the driver to hear of the kill');
    expect(await driver.endpoint(owner)).toBeNull();
  });

  it('forgets a removed proxy at once, and finds the new one made after it', async () => {
    const owner = await started();
    const before = await driver.inspect(owner);
    expect(await driver.endpoint(owner)).toEqual(before!.endpoint);
    await driver.remove(owner);
    expect(await driver.endpoint(owner)).toBeNull();
    const again = await driver.create(owner);
    const after = await driver.endpoint(owner);
    expect(after).toEqual(again.endpoint);
    expect(again.id).not.toBe(before!.id);
  });

  it('asks the engine again after a connection to the proxy failed', async () => {
    const owner = await started();
    await driver.endpoint(owner);
    const asked = engine.inspects(containerName(owner));
    driver.forgetEndpoint(owner);
    expect(await driver.endpoint(owner)).not.toBeNull();
    expect(engine.inspects(containerName(owner))).toBe(asked + 1);
  });
});
