import { formatStatus, StatusPrinter, type BridgeStatus } from '../src';

const base: BridgeStatus = {
  state: 'connected',
  server: 'https://relay.example.com',
  user: 'alice',
  target: 'http://127.0.0.1:11434',
  transport: 'ws',
  served: 12,
  active: 0,
};

function collector(isTTY = false) {
  const written: string[] = [];
  return { written, out: { write: (text: string) => written.push(text), isTTY } };
}

describe('status line', () => {
  it('reads like a sentence', () => {
    expect(formatStatus(base)).toBe(
      'connected to https://relay.example.com as alice via WebSocket · target http://127.0.0.1:11434 · 12 requests served',
    );
    expect(formatStatus({ ...base, transport: 'poll', user: undefined })).toBe(
      'connected to https://relay.example.com via long-poll · target http://127.0.0.1:11434 · 12 requests served',
    );
    expect(formatStatus({ ...base, state: 'retrying', reason: 'relay closed 1006', retryInMs: 4000 })).toBe(
      'disconnected (relay closed 1006); retrying in 4 s',
    );
    expect(formatStatus({ ...base, state: 'closed', served: 1 })).toBe('stopped · 1 request served');
  });

  it('says when the target does not answer, and names it when it does', () => {
    const down = { up: false, kind: 'unknown' as const, name: 'Ollama', error: 'connection refused' };
    expect(formatStatus({ ...base, targetHealth: down })).toBe(
      'connected to https://relay.example.com as alice via WebSocket · Ollama not reachable at http://127.0.0.1:11434 (connection refused) · 12 requests served',
    );
    expect(formatStatus({ ...base, targetHealth: { up: true, kind: 'ollama', version: '0.5.1', name: 'Ollama' } })).toBe(
      'connected to https://relay.example.com as alice via WebSocket · target http://127.0.0.1:11434 (Ollama 0.5.1) · 12 requests served',
    );
  });

  it('prints a line in a log when the target goes down or comes back, not on every probe', () => {
    const { written, out } = collector();
    const printer = new StatusPrinter('text', out);
    const up = { up: true, kind: 'ollama' as const, version: '0.5.1', name: 'Ollama' };
    const down = { up: false, kind: 'ollama' as const, name: 'Ollama', error: 'connection refused' };
    for (const targetHealth of [up, up, down, down, up]) printer.status({ ...base, targetHealth });
    expect(written).toHaveLength(3);
    expect(written[1]).toContain('Ollama not reachable at http://127.0.0.1:11434 (connection refused)');
    expect(written[2]).toContain('(Ollama 0.5.1)');
  });

  it('prints a repeating failure once in a log, and the next change again', () => {
    const { written, out } = collector();
    const printer = new StatusPrinter('text', out);
    const refused = { ...base, state: 'retrying' as const, reason: 'the relay refused the token: 401 unauthorized' };
    printer.status({ ...base, state: 'connecting' });
    for (const retryInMs of [1000, 2000, 4000]) {
      printer.status({ ...refused, retryInMs });
      printer.status({ ...base, state: 'connecting' });
    }
    printer.status({ ...base, served: 0 });
    printer.status({ ...base, served: 1 }); // a counter is not a change worth a log line
    expect(written).toEqual([
      'ctll-bridge: connecting to https://relay.example.com via WebSocket · target http://127.0.0.1:11434\n',
      'ctll-bridge: disconnected (the relay refused the token: 401 unauthorized); retrying in 1 s\n',
      'ctll-bridge: connected to https://relay.example.com as alice via WebSocket · target http://127.0.0.1:11434 · 0 requests served\n',
    ]);
  });

  it('prints a new line when the transport changes', () => {
    const { written, out } = collector();
    const printer = new StatusPrinter('text', out);
    printer.status(base);
    printer.status({ ...base, transport: 'poll' });
    expect(written).toEqual([
      'ctll-bridge: connected to https://relay.example.com as alice via WebSocket · target http://127.0.0.1:11434 · 12 requests served\n',
      'ctll-bridge: connected to https://relay.example.com as alice via long-poll · target http://127.0.0.1:11434 · 12 requests served\n',
    ]);
  });

  it('rewrites the line in place on a terminal', () => {
    const { written, out } = collector(true);
    const printer = new StatusPrinter('text', out);
    printer.status({ ...base, served: 1 });
    printer.status({ ...base, served: 2 });
    printer.endLine();
    const redraw = '\r\u001b[2K'; // back to column 0, erase the line
    expect(written).toHaveLength(3);
    expect(written[0].startsWith(`${redraw}ctll-bridge: connected`)).toBe(true);
    expect(written[0].endsWith(' 1 request served')).toBe(true);
    expect(written[1].endsWith(' 2 requests served')).toBe(true);
    expect(written[2]).toBe('\n');
  });

  it('prints JSON lines with --json-logs and nothing with --quiet', () => {
    const json = collector();
    new StatusPrinter('json', json.out, () => new Date(0)).status(base);
    expect(JSON.parse(json.written[0])).toMatchObject({ time: '1970-01-01T00:00:00.000Z', state: 'connected', user: 'alice', served: 12 });
    const quiet = collector();
    const printer = new StatusPrinter('quiet', quiet.out);
    printer.status(base);
    printer.notice('anything');
    expect(quiet.written).toEqual([]);
  });
});
