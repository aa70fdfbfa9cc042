/**
 * Chat with the model on your own PC, through your tunnel: Ollama's `/api/chat`, streamed as
 * NDJSON, each token appended as it arrives. Stop aborts the fetch; the relay sees its caller go
 * away and cancels the stream down the tunnel, so the bridge aborts the generation on the PC.
 * The conversation lives in this tab's memory only; the relay stores nothing of it.
 */
import { ApiError, describeError } from '../api';
import { h, replace } from '../dom';
import { tunnelBase, type Page, type PageContext } from './page';

interface Message {
  role: 'user' | 'assistant';
  content: string;
}

/** Ollama's `/api/tags`, the part the picker needs. */
interface Tags {
  models: Array<{ name: string }>;
}

/** One NDJSON line of Ollama's streamed `/api/chat`. */
interface ChatLine {
  message?: { content?: string };
  done?: boolean;
  error?: string;
}

/** Per user, kept while the tab lives, so moving to another page and back keeps the conversation. */
const conversations = new Map<string, Message[]>();

export function forgetConversations(): void {
  conversations.clear();
}

export const chatPage: Page = {
  path: 'chat',
  title: 'Chat',
  render(context: PageContext) {
    const base = tunnelBase(context.session);
    const history = conversations.get(context.session.userId) ?? [];
    conversations.set(context.session.userId, history);

    const model = h('select', { id: 'chat-model', name: 'model', required: true }, h('option', { value: '' }, 'Loading models…'));
    const transcript = h('div', { class: 'transcript', id: 'chat-transcript' });
    const prompt = h('textarea', { id: 'chat-prompt', name: 'prompt', rows: 3, required: true, placeholder: 'Ask your model… (Ctrl+Enter sends)' });
    const send = h('button', { type: 'submit', id: 'chat-send' }, 'Send');
    const stop = h('button', { type: 'button', id: 'chat-stop', class: 'danger', disabled: true }, 'Stop');
    const clear = h('button', { type: 'button', class: 'secondary' }, 'New chat');
    // Announced once per answer (not per token, which would flood a screen reader).
    const status = h('p', { id: 'chat-status', class: 'muted', role: 'status', 'aria-live': 'polite' });
    const form = h(
      'form',
      { class: 'card', 'aria-label': 'Send a message' },
      h('label', { for: 'chat-model' }, 'Model'),
      model,
      h('label', { for: 'chat-prompt' }, 'Message'),
      prompt,
      h('div', { class: 'row' }, send, stop, clear),
      status,
    );
    const element = h('section', { 'aria-labelledby': 'page-title' }, h('h1', { id: 'page-title' }, 'Chat'), transcript, form);

    let controller: AbortController | undefined;
    for (const message of history) transcript.append(bubble(message));

    const loadModels = async () => {
      try {
        const tags = await context.api.json<Tags>(`${base}/api/tags`);
        const names = tags.models.map((m) => m.name);
        replace(model, ...(names.length ? names.map((name) => h('option', { value: name }, name)) : [h('option', { value: '' }, 'No models on your PC')]));
      } catch (error) {
        replace(model, h('option', { value: '' }, 'No models: your PC did not answer'));
        status.textContent = describeError(error);
      }
    };

    const setBusy = (busy: boolean) => {
      send.disabled = busy;
      stop.disabled = !busy;
      clear.disabled = busy;
    };

    const ask = async () => {
      const text = prompt.value.trim();
      if (!text || !model.value) return;
      history.push({ role: 'user', content: text });
      transcript.append(bubble(history[history.length - 1]));
      prompt.value = '';
      const answer: Message = { role: 'assistant', content: '' };
      const answerElement = bubble(answer);
      answerElement.setAttribute('aria-busy', 'true');
      transcript.append(answerElement);
      // Tokens go into one text node as they come: no re-render, no markup from the model.
      const answerText = answerElement.appendChild(document.createTextNode(''));
      controller = new AbortController();
      setBusy(true);
      status.textContent = 'Answering…';
      try {
        const res = await context.api.fetch(`${base}/api/chat`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: model.value, messages: history, stream: true }),
          signal: controller.signal,
        });
        for await (const line of ndjson(res.body!)) {
          if (line.error) throw new Error(line.error);
          const piece = line.message?.content ?? '';
          if (piece) {
            answer.content += piece;
            answerText.appendData(piece);
          }
          if (line.done) break;
        }
        status.textContent = 'Answer complete.';
      } catch (error) {
        const stoppedByUser = controller.signal.aborted;
        status.textContent = stoppedByUser ? 'Stopped.' : `The answer failed: ${error instanceof ApiError || !(error instanceof Error) ? describeError(error) : error.message}`;
      } finally {
        answerElement.removeAttribute('aria-busy');
        if (answer.content) history.push(answer);
        setBusy(false);
        controller = undefined;
      }
    };

    form.addEventListener('submit', (event) => {
      event.preventDefault();
      void ask();
    });
    prompt.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    stop.addEventListener('click', () => controller?.abort());
    clear.addEventListener('click', () => {
      history.length = 0;
      replace(transcript);
      status.textContent = '';
    });

    void loadModels();
    return { element, dispose: () => controller?.abort() };
  },
};

function bubble(message: Message): HTMLElement {
  return h('div', { class: `message ${message.role}`, 'aria-label': message.role === 'user' ? 'You' : 'Model' }, message.content);
}

/** Splits a streamed NDJSON body into parsed lines as they arrive. */
async function* ndjson(body: ReadableStream<Uint8Array>): AsyncGenerator<ChatLine> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = buffered.indexOf('\n')) !== -1) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line) yield JSON.parse(line) as ChatLine;
      }
    }
    if (buffered.trim()) yield JSON.parse(buffered) as ChatLine;
  } finally {
    reader.releaseLock();
  }
}
