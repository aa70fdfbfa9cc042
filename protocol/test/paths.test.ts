import { escapesRoot } from '../src';

describe('escapesRoot', () => {
  it.each(['/..', '/../x', '/a/../../x', '/%2e%2e/x', '/%2E%2e/x', '/%2e./x', '/.%2E/x', '/a/%2F..%2F..%2Fx', '/..%5Cx', '/a\\..\\..\\x', '/%252e%252e/x', '/./../x'])(
    'climbs above the root: %s',
    (path) => {
      expect(escapesRoot(path)).toBe(true);
    },
  );

  it.each(['/', '/api/tags', '/a/../b', '/a/./b', '/a/b/../../c', '/v1/models?next=../..', '/file..name', '/...', '/%2e%2eish', '/a/%zz/b'])(
    'stays inside the root: %s',
    (path) => {
      expect(escapesRoot(path)).toBe(false);
    },
  );
});
