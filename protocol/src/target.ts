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

const probeResult = {
  /** True when the last probe got an answer. */
  up: z.boolean(),
  /** What answered; `unknown` while nothing does. */
  kind: z.enum(TARGET_KINDS),
  /** The server's own version, when it says (Ollama does). */
  version: z.string().min(1).max(64).optional(),
  /** Why the probe failed, for people: "connection refused", "timed out after 5 s". */
  error: z.string().max(512).optional(),
};

/** How a bridge's named targets are written: in `--target name=url` and in the `/t/<name>/` path prefix. */
export const TARGET_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/;
/** `/t/<name>` followed by the end, `/` or `?`. The name may be anything here: an unknown one is answered, not passed on. */
const NAMED_PREFIX = /^\/t\/([^/?]*)(.*)$/s;

/**
 * The named target a tunnel path asks for: `/t/lms/v1/models` is `{name: 'lms', rest: '/v1/models'}`;
 * a path without the `/t/` prefix (the default target's) is undefined. The bridge routes by it, and
 * the proxy's zrok path, which carries the default target only, refuses by it.
 */
export function namedTargetOf(path: string): { name: string; rest: string } | undefined {
  const match = NAMED_PREFIX.exec(path);
  if (!match) return undefined;
  const rest = match[2];
  return { name: match[1], rest: rest.startsWith('/') ? rest : `/${rest}` };
}

/** At most this many named targets per bridge: a report carries them all. */
export const MAX_NAMED_TARGETS = 16;

/** One named target (`--target name=url`) as its probe found it. */
export const namedTargetReportSchema = z.object({ name: z.string().regex(TARGET_NAME_PATTERN), ...probeResult });
export type NamedTargetReport = z.infer<typeof namedTargetReportSchema>;

/**
 * The top-level fields are the default (unnamed) target, as before there were several; `targets`
 * lists the named ones, whole each time, so the relay keeps one report per link. A relay that
 * predates `targets` drops the field and still understands the rest.
 */
export const targetReportSchema = z.object({
  type: z.literal('target'),
  ...probeResult,
  targets: z.array(namedTargetReportSchema).max(MAX_NAMED_TARGETS).optional(),
});
export type TargetReportMessage = z.infer<typeof targetReportSchema>;

/** The latest report the proxy holds for a link, with when it arrived (in the proxy's `/status`). */
export const targetHealthSchema = targetReportSchema.omit({ type: true }).extend({
  /** When the relay received the report (ISO 8601). */
  checkedAt: z.string().max(64),
});
export type TargetHealth = z.infer<typeof targetHealthSchema>;
