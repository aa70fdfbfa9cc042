/**
 * A refused credential ends the bridge after `authFailExit` refusals in a row (the CLI then exits
 * 77, tests/bridge-install.e2e.test.ts); a block page from something in the way, and a bridge told
 * to retry for ever, keep trying. Hand-scripted relays on 127.0.0.1 answer every upgrade the same
 * way; the long-poll transport's registrations and polls are counted alike.
 */
import { AuthRefusedError, startBridge, type Bridge } from '../src';
import { startFakeRelay, type FakeRelay } from './fake-relay';
import { startFakePollRelay, type FakePollRelay } from './fake-poll-relay';
import { eventually } from './helpers';

const REFUSED = { status: 401, body: JSON.stringify({ error: { code: 'unauthorized', message: 'jwt expired' } }) };
const servers: Array<FakeRelay | FakePollRelay> = [];
const bridges: Bridge[] = [];

afterEach(async () => {
  await Promise.all(bridges.splice(0).map((bridge) => bridge.close()));
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function relayAnswering(refuse: { status: number; body: string }): Promise<FakeRelay> {
  const relay = await startFakeRelay(refuse);
  servers.push(relay);
  return relay;
}

function bridgeTo(relay: FakeRelay, authFailExit: number, onGiveUp?: (error: Error) => void): Bridge {
  const bridge = startBridge({ server: relay.url, token: 'a', transport: 'ws', fallback: false, authFailExit, onGiveUp, backoff: { stepsMs: [20], jitter: 0 } });
  bridges.push(bridge);
  return bridge;
}

describe('a refused credential', () => {
  it('stops the bridge after three refusals in a row, with the relay\'s reason', async () => {
    const relay = await relayAnswering(REFUSED);
    const gaveUp: Error[] = [];
    const bridge = bridgeTo(relay, 3, (error) => gaveUp.push(error));
    const waiting = bridge.waitConnected(10_000).catch((error: Error) => error);
    await eventually(() => gaveUp.length === 1);
    expect(gaveUp[0]).toBeInstanceOf(AuthRefusedError);
    expect(gaveUp[0].message).toBe('the relay refused the token: 401 unauthorized: jwt expired (3 times in a row)');
    expect(await waiting).toBe(gaveUp[0]);
    expect(relay.upgrades).toHaveLength(3);
    expect(bridge.status().state).toBe('closed');
  });

  it('keeps trying when told to retry for ever (0)', async () => {
    const relay = await relayAnswering(REFUSED);
    const gaveUp: Error[] = [];
    const bridge = bridgeTo(relay, 0, (error) => gaveUp.push(error));
    await eventually(() => relay.upgrades.length >= 6);
    expect(gaveUp).toEqual([]);
    expect(bridge.status().state).not.toBe('closed');
  });

  it('does not count a bare 403 from something in the way (a proxy block page) as a refused token', async () => {
    const relay = await relayAnswering({ status: 403, body: '<html>blocked by policy</html>' });
    const gaveUp: Error[] = [];
    const bridge = bridgeTo(relay, 1, (error) => gaveUp.push(error));
    await eventually(() => relay.upgrades.length >= 3);
    expect(gaveUp).toEqual([]);
    expect(bridge.status().state).not.toBe('closed');
  });
});

describe('a refused credential over long-polling', () => {
  const REFUSAL = { status: 401, body: { error: { code: 'unauthorized', message: 'jwt expired' } } };

  async function pollRelay(): Promise<FakePollRelay> {
    const relay = await startFakePollRelay({ pollTimeoutMs: 200 });
    servers.push(relay);
    return relay;
  }

  function pollingBridge(relay: FakePollRelay, authFailExit: number, onGiveUp: (error: Error) => void): Bridge {
    const bridge = startBridge({ server: relay.url, token: 'a', transport: 'poll', authFailExit, onGiveUp, probeIntervalMs: 0, backoff: { stepsMs: [20], jitter: 0 } });
    bridges.push(bridge);
    return bridge;
  }

  it('stops the bridge after three refused registrations in a row, with the relay\'s reason', async () => {
    const relay = await pollRelay();
    relay.refuseRegistrations(REFUSAL);
    const gaveUp: Error[] = [];
    const bridge = pollingBridge(relay, 3, (error) => gaveUp.push(error));
    await eventually(() => gaveUp.length === 1);
    expect(gaveUp[0]).toBeInstanceOf(AuthRefusedError);
    expect(gaveUp[0].message).toBe('the relay refused the token: 401 unauthorized: jwt expired (3 times in a row)');
    expect(relay.registrations).toHaveLength(3);
    expect(bridge.status().state).toBe('closed');
  });

  it('counts a poll refused while connected like a refused registration, and a connection that opened starts the count again', async () => {
    const relay = await pollRelay();
    const gaveUp: Error[] = [];
    const bridge = pollingBridge(relay, 3, (error) => gaveUp.push(error));
    await bridge.waitConnected(5_000);
    // A refused poll and a refused registration (two in a row), then let in: the count starts again.
    relay.refuseRegistrations(REFUSAL);
    relay.failNextPoll(401, REFUSAL.body);
    await relay.until(() => relay.registrations.length >= 2);
    relay.refuseRegistrations(undefined);
    await bridge.waitConnected(5_000);
    expect(gaveUp).toEqual([]);
    // The poll's refusal, then two registrations: three in a row.
    relay.refuseRegistrations(REFUSAL);
    relay.failNextPoll(401, REFUSAL.body);
    await eventually(() => gaveUp.length === 1);
    expect(gaveUp[0].message).toBe('the relay refused the token: 401 unauthorized: jwt expired (3 times in a row)');
    // 1 accepted, 1 refused, 1 accepted, then 2 refused.
    expect(relay.registrations.length).toBe(5);
  });

  it('does not count a bare 403 from something in the way as a refused token', async () => {
    const relay = await pollRelay();
    relay.refuseRegistrations({ status: 403, body: '<html>blocked by policy</html>' });
    const gaveUp: Error[] = [];
    const bridge = pollingBridge(relay, 1, (error) => gaveUp.push(error));
    await relay.until(() => relay.registrations.length >= 3);
    expect(gaveUp).toEqual([]);
    expect(bridge.status().state).not.toBe('closed');
  });
});
