import { errorBody, fitsInline } from '@ctll/protocol';
import type { UpstreamSender } from './relayed-stream';

/**
 * A refusal as the HTTP path answers it (status, Retry-After, `{error: {code, message}}`), in
 * frames: one whole frame when api-backend takes them, else a head, the body in one frame (well
 * within the stream's first credit), the end.
 */
export function sendErrorAnswer(upstream: UpstreamSender, id: string, error: unknown): void {
  const { status, body, headers } = errorBody(error);
  const text = Buffer.from(JSON.stringify(body));
  const head = {
    type: 'http_response' as const,
    id,
    status,
    headers: { ...headers, 'content-type': 'application/json; charset=utf-8', 'content-length': String(text.byteLength) },
  };
  if (upstream.acceptsWhole && fitsInline(text.byteLength) && upstream.sendWhole({ ...head, end: true }, text)) return;
  upstream.sendControl({ ...head, end: false });
  upstream.sendData(id, text);
  upstream.sendControl({ type: 'end', id });
}
