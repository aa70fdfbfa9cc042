/**
 * Reading WebSocket frames off the wire (RFC 6455 §5.2), for tests that check what a client end
 * actually sent rather than what the server handed on after unmasking.
 */

/** The masking keys of the client frames in `bytes` (RFC 6455 §5.2), first frame first. */
export function maskKeys(bytes: Buffer): Buffer[] {
  const keys: Buffer[] = [];
  let at = 0;
  while (at + 2 <= bytes.length) {
    const masked = (bytes[at + 1] & 0x80) !== 0;
    let length = bytes[at + 1] & 0x7f;
    let header = 2;
    if (length === 126) {
      length = bytes.readUInt16BE(at + 2);
      header = 4;
    } else if (length === 127) {
      length = Number(bytes.readBigUInt64BE(at + 2));
      header = 10;
    }
    if (!masked) throw new Error('a client frame without a mask');
    if (at + header + 4 + length > bytes.length) break;
    keys.push(bytes.subarray(at + header, at + header + 4));
    at += header + 4 + length;
  }
  return keys;
}
