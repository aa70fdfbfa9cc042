import { CALLER_ONLY_HEADERS, endToEndHeaders } from '../src';

describe('endToEndHeaders', () => {
  it('drops hop-by-hop headers, ones named in Connection, and internal ones', () => {
    const out = endToEndHeaders({
      connection: 'keep-alive, x-custom-hop',
      'keep-alive': 'timeout=5',
      'transfer-encoding': 'chunked',
      upgrade: 'websocket',
      host: 'relay',
      'x-custom-hop': '1',
      'x-ctll-proxy-secret': 'nope',
      'content-type': 'application/json',
      'content-length': '12',
      accept: 'application/x-ndjson',
    });
    expect(out).toEqual({ 'content-type': 'application/json', 'content-length': '12', accept: 'application/x-ndjson' });
  });

  it("keeps the caller's credentials away from the desktop", () => {
    const out = endToEndHeaders({ authorization: 'Bearer x', cookie: 'a=b', 'x-forwarded-for': '1.2.3.4', accept: '*/*' }, CALLER_ONLY_HEADERS);
    expect(out).toEqual({ accept: '*/*' });
  });
});
