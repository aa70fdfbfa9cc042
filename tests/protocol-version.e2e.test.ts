/**
 * A desktop link names its tunnel protocol version when it opens (x-ctll-protocol, on the
 * WebSocket upgrade and on the polling registration). A bridge too old or too new for the relay
 * is refused with the catalogue's `protocol_version` and told what to upgrade; today's bridge,
 * and one from before the header existed, connect on both transports.
 */
import WebSocket from 'ws';
import { PROTOCOL_VERSION, PROTOCOL_VERSION_HEADER } from '@ctll/protocol';
import { startLayout, type Layout } from './helpers/layout';

interface Refusal {
  status: number;
  error: { code: string; message: string };
}

function upgradeWith(layout: Layout, user: string, version: string | undefined): Promise<Refusal | 'open'> {
  const headers: Record<string, string> = { authorization: `Bearer ${layout.token(user)}` };
  if (version !== undefined) headers[PROTOCOL_VERSION_HEADER] = version;
  const ws = new WebSocket(`${layout.relay.url.replace('http', 'ws')}/ws/tunnel`, { headers });
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.close();
      resolve('open');
    });
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, ...(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Omit<Refusal, 'status'>) });
        ws.terminate();
      });
    });
    ws.once('error', reject);
  });
}

async function registerWith(layout: Layout, user: string, version: string): Promise<Refusal> {
  const res = await fetch(`${layout.relay.url}/api/bridge/register`, {
    method: 'POST',
    headers: { authorization: `Bearer ${layout.token(user)}`, 'content-type': 'application/json', [PROTOCOL_VERSION_HEADER]: version },
    body: '{}',
  });
  return { status: res.status, ...((await res.json()) as Omit<Refusal, 'status'>) };
}

describe('the tunnel protocol version, when a desktop link opens', () => {
  let layout: Layout;

  beforeAll(async () => {
    layout = await startLayout();
  });
  afterAll(() => layout?.close());

  it("connects today's bridge on both transports and relays through it", async () => {
    for (const transport of ['ws', 'poll'] as const) {
      const user = `current-${transport}`;
      await layout.connectBridge(user, { transport });
      expect((await layout.fetchAs(user, '/api/tags')).status).toBe(200);
    }
  });

  it('opens a tunnel for a bridge from before the version was named (it speaks version 1)', async () => {
    expect(await upgradeWith(layout, 'unnamed', undefined)).toBe('open');
  });

  it('tells a bridge too old for the relay to upgrade ctll-bridge, on both transports', async () => {
    const tooOld = String(0);
    const expected = {
      status: 400,
      error: { code: 'protocol_version', message: `this bridge speaks tunnel protocol 0, this relay speaks ${PROTOCOL_VERSION}: upgrade ctll-bridge to a release made for this relay` },
    };
    expect(await upgradeWith(layout, 'old', tooOld)).toEqual(expected);
    expect(await registerWith(layout, 'old', tooOld)).toEqual(expected);
  });

  it('tells a bridge too new for the relay to upgrade the relay, on both transports', async () => {
    const tooNew = String(PROTOCOL_VERSION + 1);
    const expected = {
      status: 400,
      error: {
        code: 'protocol_version',
        message: `this bridge speaks tunnel protocol ${tooNew}, this relay speaks ${PROTOCOL_VERSION}: upgrade the relay, or use an older ctll-bridge`,
      },
    };
    expect(await upgradeWith(layout, 'new', tooNew)).toEqual(expected);
    expect(await registerWith(layout, 'new', tooNew)).toEqual(expected);
  });

  it('refuses a version that is not a number', async () => {
    expect(await upgradeWith(layout, 'garbled', 'v1.2')).toMatchObject({ status: 400, error: { code: 'protocol_version' } });
  });
});
