/**
 * A reader of a server-sent event stream over plain fetch, as the console reads
 * `GET /api/me/events`: events are queued as they arrive, and a test takes them one at a time.
 * The wire format is parsed here by hand, independently of the console's parser (eventsource-parser,
 * which is ESM-only for jest besides): the subset the relay sends, `event:` and `data:` lines,
 * comment lines skipped, blank-line separated.
 */
export interface EventSourceMessage {
  event?: string;
  data: string;
}

function createParser(handlers: { onEvent: (event: EventSourceMessage) => void }): { feed(text: string): void } {
  let buffer = '';
  return {
    feed(text) {
      buffer += text.replace(/\r\n?/g, '\n');
      for (let cut = buffer.indexOf('\n\n'); cut !== -1; cut = buffer.indexOf('\n\n')) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let event: string | undefined;
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          const field = colon === -1 ? line : line.slice(0, colon);
          const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'event') event = value;
          else if (field === 'data') data.push(value);
        }
        if (data.length > 0) handlers.onEvent({ event, data: data.join('\n') });
      }
    },
  };
}

export interface EventStream {
  response: Response;
  /** The next event; rejects after `timeoutMs` of nothing, or if the stream ended first. */
  next(timeoutMs?: number): Promise<EventSourceMessage>;
  /** The next event that `matches`, skipping others. */
  until(matches: (event: EventSourceMessage) => boolean, timeoutMs?: number): Promise<EventSourceMessage>;
  /** Every event so far, taken or not. */
  readonly seen: EventSourceMessage[];
  /** Resolves once the server ends the stream (true) or it breaks (false). */
  ended: Promise<boolean>;
  close(): void;
}

/** Opens the stream; the response is returned as is (and nothing read) unless it is a 200. */
export async function openEventStream(url: string, headers: Record<string, string>): Promise<EventStream> {
  const controller = new AbortController();
  const response = await fetch(url, { headers, signal: controller.signal });
  const seen: EventSourceMessage[] = [];
  const queue: EventSourceMessage[] = [];
  let wakeUp: (() => void) | undefined;
  let finished = false;
  const parser = createParser({
    onEvent: (event) => {
      seen.push(event);
      queue.push(event);
      wakeUp?.();
    },
  });
  const ended = (async () => {
    if (response.status !== 200 || !response.body) return false;
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body) parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
      return true;
    } catch {
      return false;
    } finally {
      finished = true;
      wakeUp?.();
    }
  })();

  const next = async (timeoutMs = 10_000): Promise<EventSourceMessage> => {
    const deadline = Date.now() + timeoutMs;
    while (queue.length === 0) {
      if (finished) throw new Error('the event stream ended');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no event within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return queue.shift()!;
  };
  const until = async (matches: (event: EventSourceMessage) => boolean, timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const event = await next(Math.max(1, deadline - Date.now()));
      if (matches(event)) return event;
    }
  };
  return { response, next, until, seen, ended, close: () => controller.abort() };
}
