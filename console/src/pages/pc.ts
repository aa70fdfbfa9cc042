/**
 * My PC: is the bridge connected, by which transport, does its model server answer, and the
 * tunnel's own round trip (the proxy's ping to the PC and back), updated live without a reload.
 *
 * Live by `GET /api/me/events` (server-sent events) read with fetch, because EventSource cannot
 * send an Authorization header and the console keeps its token out of URLs and cookies. A stream
 * that ends cleanly (the relay restarting, the token that opened it expiring) is opened again at
 * once; one that fails falls back to polling `/health`, trying the stream again every few polls.
 * While the tab is hidden nothing is open.
 */
import { createParser } from 'eventsource-parser';
import type { TargetHealth } from '@ctll/protocol';
import { HEALTH_EVENT, type TunnelHealth } from '@ctll/protocol/src/tunnel-health';
import { ApiError, describeError } from '../api';
import { fact, formatTime, h, replace } from '../dom';
import { tunnelBase, type Page, type PageContext } from './page';
import { usageCard } from './usage-card';

const EVENTS_PATH = '/api/me/events';
/** After a stream ended cleanly: a moment, so a restarting relay is not asked in a tight loop. */
const REOPEN_MS = 1_000;
const POLL_MS = 2_000;
/** Polls, while the stream fails, before it is tried again. */
const POLLS_BEFORE_RETRY = 5;

const TRANSPORTS: Record<string, string> = { ws: 'WebSocket', poll: 'HTTP long-polling', zrok: 'zrok share' };

export const pcPage: Page = {
  path: 'pc',
  title: 'My PC',
  render(context: PageContext) {
    const state = h('p', { class: 'state', id: 'pc-state', role: 'status', 'aria-live': 'polite' }, 'Checking…');
    const facts = h('dl', { class: 'facts' });
    const help = h('div');
    const usage = usageCard(context.api);
    const element = h('section', { 'aria-labelledby': 'page-title' }, h('h1', { id: 'page-title' }, 'My PC'), h('div', { class: 'card' }, state, facts), help, usage.element);

    let stopped = false;
    let controller: AbortController | undefined;
    let timer: number | undefined;
    let wake: (() => void) | undefined;
    /** Waits `ms`, or until woken (the tab shown or hidden, the page left). */
    const pause = (ms?: number) =>
      new Promise<void>((resolve) => {
        wake = resolve;
        if (ms !== undefined) timer = window.setTimeout(resolve, ms);
      });
    const interrupt = () => {
      window.clearTimeout(timer);
      controller?.abort();
      wake?.();
    };

    /** Resolves when the relay ends the stream; throws when it cannot be opened or breaks. */
    const follow = async (signal: AbortSignal) => {
      const res = await context.api.fetch(EVENTS_PATH, { signal, headers: { accept: 'text/event-stream' } });
      if (!res.body) throw new Error('the relay sent no event stream');
      const parser = createParser({
        onEvent: (event) => {
          if (event.event === HEALTH_EVENT) show(JSON.parse(event.data) as TunnelHealth, 'live');
        },
      });
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        parser.feed(value);
      }
    };

    const poll = async (signal: AbortSignal) => {
      try {
        show(await context.api.json<TunnelHealth>(`${tunnelBase(context.session)}/health`, { signal }), 'polled');
      } catch (error) {
        if (stopped || signal.aborted) return;
        state.className = 'state offline';
        state.textContent = 'Unknown';
        replace(facts, fact('Problem', describeError(error)));
      }
    };

    const run = async () => {
      while (!stopped) {
        if (document.hidden) {
          await pause();
          continue;
        }
        const signal = (controller = new AbortController()).signal;
        try {
          await follow(signal);
          await pause(REOPEN_MS);
        } catch (error) {
          if (stopped || signal.aborted) continue;
          // Signed out (the app has gone to sign-in): nothing to follow any more.
          if (error instanceof ApiError && error.status === 401) return;
          for (let i = 0; i < POLLS_BEFORE_RETRY && !stopped && !signal.aborted; i++) {
            await poll(signal);
            await pause(POLL_MS);
          }
        }
      }
    };

    const show = (health: TunnelHealth, how: 'live' | 'polled') => {
      const online = health.connected;
      state.className = `state ${online ? 'online' : 'offline'}`;
      state.textContent = online ? 'Connected' : 'Offline';
      replace(
        facts,
        fact('Transport', health.transport ? (TRANSPORTS[health.transport] ?? health.transport) : '—'),
        fact('Model server', online ? describeTarget(health.target) : '—'),
        fact('Requests in progress', String(health.activeRequests)),
        fact('Your relay proxy', health.proxy),
        fact('Tunnel round trip', describeRtt(health)),
        fact(how === 'live' ? 'Updated' : 'Checked', formatTime(new Date().toISOString())),
      );
      replace(help, online ? null : connectHelp(context));
    };

    document.addEventListener('visibilitychange', interrupt);
    void run();
    return {
      element,
      dispose() {
        stopped = true;
        interrupt();
        usage.dispose();
        document.removeEventListener('visibilitychange', interrupt);
      },
    };
  },
};

function describeRtt(health: TunnelHealth): string {
  if (health.rttMs !== null) {
    const average = health.rttAverageMs !== null ? `, ${health.rttAverageMs} ms on average` : '';
    return `${health.rttMs} ms (your relay proxy → your PC → back${average})`;
  }
  if (!health.connected) return '—';
  return health.transport === 'ws' ? 'measuring…' : 'not measured over this transport';
}

function describeTarget(target: TargetHealth | null): string {
  if (!target) return 'not reported yet';
  const what = target.kind === 'ollama' ? 'Ollama' : target.kind === 'openai' ? 'OpenAI-compatible server' : 'server';
  if (target.up) return `up: ${what}${target.version ? ` ${target.version}` : ''}`;
  return `down${target.error ? `: ${target.error}` : ''}`;
}

function connectHelp(context: PageContext): HTMLElement {
  const server = location.origin;
  return h(
    'div',
    { class: 'card' },
    h('h2', {}, 'Connect your PC'),
    h('p', {}, 'On the PC where your model runs, start the bridge:'),
    h('p', { class: 'secret' }, context.session.mode === 'dev' ? `npm run bridge -- --server ${server} --token "$(npm run --silent token -- ${context.session.userId})"` : `ctll-bridge login --server ${server} && ctll-bridge`),
    h('p', { class: 'muted' }, 'This page updates by itself when it connects.'),
  );
}
