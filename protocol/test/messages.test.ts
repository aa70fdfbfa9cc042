import { parseControl, encodeControl, type ControlMessage } from '../src';

describe('parseControl accepts every well-formed message', () => {
  const messages: ControlMessage[] = [
    { type: 'http_request', id: 't0.1', method: 'POST', path: '/api/chat?x=1', headers: { 'content-type': 'application/json', 'x-a': ['1', '2'] }, end: false },
    { type: 'http_response', id: 'a', status: 200, headers: {}, end: true },
    { type: 'http_response', id: 'b', status: 200, headers: Object.fromEntries(Array.from({ length: 256 }, (_, i) => [`h${i}`, 'x'.repeat(16 * 1024)])), end: true },
    { type: 'end', id: 'a' },
    { type: 'cancel', id: 'a', reason: 'client disconnected' },
    { type: 'window', id: 'a', bytes: 65536 },
    { type: 'ping', ts: 1 },
    { type: 'pong', ts: 1 },
    { type: 'error', code: 'bad_message', message: 'x' },
    { type: 'error', id: 'a', code: 'target_unreachable', message: 'ECONNREFUSED' },
    { type: 'target', up: true, kind: 'ollama', version: '0.5.1' },
    { type: 'target', up: false, kind: 'unknown', error: 'connection refused' },
  ];
  it.each(messages.map((m) => [m.type, m] as const))('%s round-trips', (_type, message) => {
    expect(parseControl(encodeControl(message))).toEqual({ ok: true, value: message });
  });
});

describe('parseControl rejects malformed input without throwing', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['not JSON', '{"type":', /not valid JSON/],
    ['a JSON array', '[1,2]', /.+/],
    ['unknown type', '{"type":"shell","id":"a"}', /.+/],
    ['missing id', '{"type":"end"}', /id/],
    ['id with spaces', '{"type":"end","id":"a b"}', /id must be/],
    ['id too long', JSON.stringify({ type: 'end', id: 'x'.repeat(65) }), /id must be/],
    ['status out of range', '{"type":"http_response","id":"a","status":999,"headers":{},"end":true}', /status/],
    ['lower-case method', '{"type":"http_request","id":"a","method":"get","path":"/","headers":{},"end":true}', /method/],
    ['relative path', '{"type":"http_request","id":"a","method":"GET","path":"api","headers":{},"end":true}', /path/],
    ['header value not a string', '{"type":"http_response","id":"a","status":200,"headers":{"a":1},"end":true}', /headers: header a: a string or a list of strings/],
    ['headers not an object', '{"type":"http_response","id":"a","status":200,"headers":["a"],"end":true}', /headers must be an object/],
    ['a repeated header with a number in it', JSON.stringify({ type: 'http_response', id: 'a', status: 200, headers: { 'set-cookie': ['a=1', 2] }, end: true }), /header set-cookie: a string or a list/],
    ['an empty header name', JSON.stringify({ type: 'http_response', id: 'a', status: 200, headers: { '': 'x' }, end: true }), /header name is 1-256/],
    ['a header value past 16 KiB', JSON.stringify({ type: 'http_response', id: 'a', status: 200, headers: { big: 'x'.repeat(16 * 1024 + 1) }, end: true }), /header big: at most 16384/],
    ['a header repeated 65 times', JSON.stringify({ type: 'http_response', id: 'a', status: 200, headers: { v: Array(65).fill('1') }, end: true }), /header v: at most 64 values/],
    ['257 headers', JSON.stringify({ type: 'http_response', id: 'a', status: 200, headers: Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`h${i}`, '1'])), end: true }), /at most 256 headers/],
    ['negative window', '{"type":"window","id":"a","bytes":-5}', /bytes/],
    ['null', 'null', /.+/],
    ['target kind not known', '{"type":"target","up":true,"kind":"shell"}', /kind/],
    ['target without up', '{"type":"target","kind":"ollama"}', /up/],
    ['target error too long', JSON.stringify({ type: 'target', up: false, kind: 'ollama', error: 'x'.repeat(513) }), /error/],
  ];
  it.each(cases)('%s', (_name, text, reason) => {
    const result = parseControl(text);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatch(reason);
  });
});
