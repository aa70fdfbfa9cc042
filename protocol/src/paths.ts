/**
 * Request paths that would climb above the root they are relayed into. Servers differ in what
 * they decode before resolving dot segments (`%2e%2e`, `%2F..`, a backslash read as a slash on
 * Windows), and a path may be decoded again by each hop, so this reads a path the widest way:
 * percent-escapes decoded until nothing changes, `/` and `\` both separators. The relay refuses
 * such paths, and the bridge refuses them again against its `--target` base path.
 */

/** True when the path (query and fragment ignored) resolves above its root by any common reading. */
export function escapesRoot(path: string): boolean {
  let pathname = path.split(/[?#]/, 1)[0];
  for (;;) {
    const decoded = pathname.replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    if (decoded === pathname) break;
    pathname = decoded;
  }
  let depth = 0;
  for (const segment of pathname.split(/[\\/]/)) {
    if (segment === '..') {
      depth -= 1;
      if (depth < 0) return true;
    } else if (segment !== '' && segment !== '.') {
      depth += 1;
    }
  }
  return false;
}
