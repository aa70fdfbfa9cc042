/**
 * The all-zero WebSocket masking key, for client ends whose frames no intermediary can read.
 *
 * RFC 6455 §5.3 has a client mask every frame with a fresh, unpredictable key so that a script
 * cannot choose the bytes a plain-text intermediary (a transparent cache, a TLS-inspecting
 * proxy) sees and make them look like a request to it. Where no intermediary exists, the key
 * protects nothing and costs a pass over every byte on both ends (the XOR, plus the copy ws makes
 * of a read-only buffer before it masks). The frames stay masked frames with the zero key, as a
 * server requires, and ws then skips both passes on either end.
 *
 * Used by the bridge for a relay on loopback reached directly, and by api-backend for its frame
 * links to its own proxies (loopback or the user's private network: nothing sits between them).
 */
export function zeroMask(mask: Buffer): void {
  mask.fill(0);
}
