/**
 * The stream table of one desktop connection (tunnel/correlator.ts), driven as the links drive it:
 * messages in, handlers called. Each handler here records what its exchange would have heard.
 */
import { TunnelErrorCode, type ControlMessage } from '@ctll/protocol';
import { Correlator, type StreamHandler, type StreamSender } from '../src/tunnel/correlator';

type Heard = Array<[string, ...unknown[]]>;

function recorder(): StreamHandler & { heard: Heard } {
  const heard: Heard = [];
  return {
    heard,
    onResponse: (message) => heard.push(['response', message.status]),
    onData: (payload) => heard.push(['data', payload.toString()]),
    onEnd: () => heard.push(['end']),
    onWindow: (bytes) => heard.push(['window', bytes]),
    onError: (code, message) => heard.push(['error', code, message]),
  };
}

function replies(): StreamSender & { sent: ControlMessage[] } {
  const sent: ControlMessage[] = [];
  return { sent, sendControl: (message) => sent.push(message), sendData: () => undefined };
}

function correlator(maxStreams = 8, protocolErrors: string[] = []): Correlator {
  return new Correlator('t0.', maxStreams, (message) => protocolErrors.push(message));
}

it('routes each desktop message to the stream it names, never to another open stream', () => {
  const table = correlator();
  const a = recorder();
  const b = recorder();
  const idA = table.open(a);
  const idB = table.open(b);
  const reply = replies();
  table.handleControl({ type: 'http_response', id: idB, status: 201, headers: {}, end: false }, reply);
  table.handleData(idB, Buffer.from('for b'));
  table.handleControl({ type: 'window', id: idA, bytes: 10 }, reply);
  table.handleControl({ type: 'end', id: idB }, reply);
  expect(a.heard).toEqual([['window', 10]]);
  expect(b.heard).toEqual([['response', 201], ['data', 'for b'], ['end']]);
});

it('gives every stream of a link its own id, carrying the link prefix, even after earlier ones closed', () => {
  const table = correlator();
  const ids = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const id = table.open(recorder());
    ids.add(id);
    table.close(id);
  }
  expect(ids.size).toBe(50);
  for (const id of ids) expect(id.startsWith('t0.')).toBe(true);
});

it('drops late messages for a closed stream instead of handing them to a stream opened after it', () => {
  const table = correlator();
  const old = recorder();
  const oldId = table.open(old);
  table.close(oldId);
  const fresh = recorder();
  table.open(fresh);
  table.handleData(oldId, Buffer.from('late'));
  table.handleControl({ type: 'end', id: oldId }, replies());
  table.handleControl({ type: 'error', id: oldId, code: 'target_failed', message: 'late' }, replies());
  expect(old.heard).toEqual([]);
  expect(fresh.heard).toEqual([]);
  expect(table.has(oldId)).toBe(false);
});

it('is full at the stream limit, and closing one stream frees one slot', () => {
  const table = correlator(2);
  const first = table.open(recorder());
  expect(table.full).toBe(false);
  table.open(recorder());
  expect(table.full).toBe(true);
  expect(table.size).toBe(2);
  table.close(first);
  expect(table.full).toBe(false);
});

it('fails every open stream once when the connection goes, and forgets them all', () => {
  const table = correlator();
  const handlers = [recorder(), recorder(), recorder()];
  const ids = handlers.map((handler) => table.open(handler));
  table.failAll('desktop_disconnected', 'gone');
  for (const handler of handlers) expect(handler.heard).toEqual([['error', 'desktop_disconnected', 'gone']]);
  expect(table.size).toBe(0);
  for (const id of ids) expect(table.has(id)).toBe(false);
  // A second failAll (the link's close racing its socket's) tells nobody twice.
  table.failAll('desktop_disconnected', 'again');
  for (const handler of handlers) expect(handler.heard).toHaveLength(1);
});

it('fails a stream the desktop cancels with cancelled_by_desktop and its reason', () => {
  const table = correlator();
  const handler = recorder();
  const id = table.open(handler);
  table.handleControl({ type: 'cancel', id, reason: 'model unloaded' }, replies());
  expect(handler.heard).toEqual([['error', 'cancelled_by_desktop', 'model unloaded']]);
});

it('passes a stream error from the desktop on with its own code; an error without a stream fails no stream', () => {
  const protocolErrors: string[] = [];
  const table = correlator(8, protocolErrors);
  const handler = recorder();
  const id = table.open(handler);
  table.handleControl({ type: 'error', code: 'bad_message', message: 'your frame was odd' }, replies());
  expect(handler.heard).toEqual([]);
  expect(protocolErrors).toEqual(['desktop reported bad_message: your frame was odd']);
  table.handleControl({ type: 'error', id, code: TunnelErrorCode.TargetUnreachable, message: 'connection refused' }, replies());
  expect(handler.heard).toEqual([['error', TunnelErrorCode.TargetUnreachable, 'connection refused']]);
});

it('answers a ping with a pong carrying the same timestamp', () => {
  const reply = replies();
  correlator().handleControl({ type: 'ping', ts: 12345 }, reply);
  expect(reply.sent).toEqual([{ type: 'pong', ts: 12345 }]);
});

it('refuses an http_request coming from the desktop with bad_message instead of running it', () => {
  const table = correlator();
  const handler = recorder();
  const id = table.open(handler);
  const reply = replies();
  table.handleControl({ type: 'http_request', id, method: 'GET', path: '/', headers: {}, end: true }, reply);
  expect(reply.sent).toEqual([expect.objectContaining({ type: 'error', id, code: TunnelErrorCode.BadMessage })]);
  expect(handler.heard).toEqual([]);
});

it("keeps the desktop's latest report of its LLM server, stamped with when it arrived", () => {
  const table = correlator();
  expect(table.target).toBeUndefined();
  table.handleControl({ type: 'target', up: false, kind: 'unknown', error: 'connection refused' }, replies());
  table.handleControl({ type: 'target', up: true, kind: 'ollama', version: '0.6.4' }, replies());
  expect(table.target).toMatchObject({ up: true, kind: 'ollama', version: '0.6.4' });
  expect(table.target).not.toHaveProperty('type');
  expect(Number.isNaN(Date.parse(table.target!.checkedAt))).toBe(false);
});
