/**
 * What the bridge knows of its local LLM server (its "target"), told to the relay.
 *
 * The bridge probes the target at start and then on an interval; whenever the answer changes, and
 * on each new connection, it sends a `target` control message (on the WebSocket, or inside a
 * long-poll heartbeat's `messages`). The proxy keeps the latest report per link and shows it in its
 * `/status`, so a web app can tell "your PC is online but Ollama is not running" from "your PC is
 * offline".
 */
import { z } from 'zod';

/** The kinds of server the probe recognises: Ollama (`/api/version`) or an OpenAI-compatible one (`/v1/models`). */
export const TARGET_KINDS = ['ollama', 'openai', 'unknown'] as const;
export type TargetKind = (typeof TARGET_KINDS)[number];

export const targetReportSchema = z.object({
  type: z.literal('target'),
  /** True when the last probe got an answer. */
  up: z.boolean(),
  /** What answered; `unknown` while nothing does. */
  kind: z.enum(TARGET_KINDS),
  /** The server's own version, when it says (Ollama does). */
  version: z.string().min(1).max(64).optional(),
  /** Why the probe failed, for people: "connection refused", "timed out after 5 s". */
  error: z.string().max(512).optional(),
});
export type TargetReportMessage = z.infer<typeof targetReportSchema>;

/** The latest report the proxy holds for a link, with when it arrived (in the proxy's `/status`). */
export const targetHealthSchema = targetReportSchema.omit({ type: true }).extend({
  /** When the relay received the report (ISO 8601). */
  checkedAt: z.string().max(64),
});
export type TargetHealth = z.infer<typeof targetHealthSchema>;
