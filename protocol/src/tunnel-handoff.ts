import { z } from 'zod';
import { wireHeadersSchema } from './messages';

/**
 * A desktop's tunnel handed to a proxy that is api-backend's own child process (the process
 * driver). Otherwise api-backend opens a second connection to the proxy for each tunnel and
 * copies every byte between the two sockets, both ways; a child process can instead be sent the
 * desktop's socket itself over its IPC channel, with the upgrade request api-backend already
 * parsed and checked. The proxy answers the handshake on that socket as if the request had
 * reached its own HTTP server (same headers, same secret, same limits) and reports how it went,
 * so api-backend still counts and audits the tunnel and, when it drains, closes it.
 *
 * Invariant: a ticket is answered once with `accepted` or `refused`, and an accepted one once more
 * with `closed`; a proxy that exits closes all of its tickets. Nothing else about the tunnel
 * crosses the channel: its bytes go between the desktop and the proxy.
 *
 *   api-backend → proxy   `tunnel` (the socket rides along), `tunnel-close`
 *   proxy → api-backend   `tunnel-accepted`, `tunnel-refused` (the proxy answered the desktop
 *                         itself), `tunnel-closed`
 */

const ticket = z.number().int().nonnegative();

export const tunnelHandOffSchema = z.object({
  type: z.literal('tunnel'),
  ticket,
  /** The upgrade request's headers for the proxy: the caller's, filtered, with api-backend's own. */
  headers: wireHeadersSchema,
  /** Base64 of the bytes api-backend read past the request's head (usually none). */
  head: z.string(),
});

export const tunnelCloseSchema = z.object({ type: z.literal('tunnel-close'), ticket });

/** What api-backend sends a child proxy about handed tunnels. */
export const handOffRequestSchema = z.discriminatedUnion('type', [tunnelHandOffSchema, tunnelCloseSchema]);

/** What a child proxy tells api-backend about a handed tunnel. */
export const handOffReportSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('tunnel-accepted'), ticket }),
  z.object({ type: z.literal('tunnel-refused'), ticket, status: z.number().int(), code: z.string() }),
  z.object({ type: z.literal('tunnel-closed'), ticket }),
]);

export type TunnelHandOff = z.infer<typeof tunnelHandOffSchema>;
export type HandOffRequest = z.infer<typeof handOffRequestSchema>;
export type HandOffReport = z.infer<typeof handOffReportSchema>;
