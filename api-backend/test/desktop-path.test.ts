import { desktopPath } from '../src/routes/tunnel-routes';

describe('desktopPath', () => {
  it.each([
    ['/api/tunnel/alice/api/chat', '/api/chat'],
    ['/api/tunnel/alice', '/'],
    ['/api/tunnel/alice/', '/'],
    ['/api/tunnel/alice?x=1', '/?x=1'],
    ['/api/tunnel/alice/v1/chat/completions?stream=true', '/v1/chat/completions?stream=true'],
    ['/api/tunnel/auth0%7C123/api/tags', '/api/tags'],
    ['/api/tunnel/alice/a%20b/c%2Fd', '/a%20b/c%2Fd'],
  ])('%s → %s', (url, expected) => {
    expect(desktopPath(url)).toBe(expected);
  });
});
