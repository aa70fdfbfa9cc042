/**
 * Whole frames on the desktop's tunnel (both transports): the same one-message form of a short
 * request or answer as on api-backend's frame link (whole-frame.ts, same codec, same limit), here
 * between the proxy and the bridge. A whole frame stands for the three messages it replaces
 * (head, body, end); each side unpacks it into the same three events, so stream logic, cancel,
 * byte counts and per-user limits see no difference.
 *
 * Negotiation, per connection:
 * - WebSocket: the bridge offers whole frames with WHOLE_FRAMES_HEADER on its upgrade; a proxy that
 *   takes them answers the 101 with the same header. (Not an `x-ctll-` name: api-backend strips
 *   those from a caller's headers, since they are its own to the proxy.)
 * - Long-poll: the registration body says `whole: true`; a proxy that takes them answers the
 *   registration with `whole: true`. Whole requests then arrive as a poll record (frame kind 0x02),
 *   and a whole answer is a POST of POLL_WHOLE_CONTENT_TYPE holding one whole frame.
 * Each side sends whole frames only to a peer that said it takes them, and refuses one from a peer
 * that did not (`bad_message`). Old bridges send no header and no field; old proxies answer neither
 * (zod drops the field): both keep the three-message form. PROTOCOL_VERSION stays as it is, since
 * nothing either side already sends changes meaning, and a version bump would make the relay
 * refuse every older bridge (MIN_PROTOCOL_VERSION) for a feature that can simply be left unused.
 *
 * Credit: the sender of a whole frame spends no credit for its body, a fresh stream's first window
 * covers it, and no body frame of its stream follows. The receiver may count the body against the
 * stream's window like any data (it unpacks it into a data event), but it never grants credit for
 * it: grants are batched to half a window (flow.ts ReceiveCredit), and the inline body is below
 * that, checked below. That matters, because a grant for bytes the sender never spent would be
 * refused as forged and close the link.
 */
import { z } from 'zod';
import { INITIAL_WINDOW } from './flow';
import { MAX_INLINE_BODY_BYTES } from './whole-frame';

/** Bridge → relay on the upgrade, relay → bridge on the 101: "this side takes whole frames". */
export const WHOLE_FRAMES_HEADER = 'ctll-whole-frames';
export const WHOLE_FRAMES_HEADER_VALUE = '1';

/** Content type of a long-poll answer POST whose body is one whole frame. */
export const POLL_WHOLE_CONTENT_TYPE = 'application/vnd.ctll.whole';

if (MAX_INLINE_BODY_BYTES >= INITIAL_WINDOW / 2) throw new Error('a whole frame body must stay below the batched grant of half a window');

const offerSchema = z.literal(WHOLE_FRAMES_HEADER_VALUE);

/** Whether a WHOLE_FRAMES_HEADER value says the other side takes whole frames (a repeated header does not). */
export function saysWhole(header: string | string[] | undefined): boolean {
  return offerSchema.safeParse(typeof header === 'string' ? header.trim() : header).success;
}
