/**
 * My PC: is the bridge connected, by which transport, does its model server answer, and how long
 * a status round trip takes, updated every couple of seconds without a reload.
 *
 * Why a fetch poll and not server-sent events: EventSource cannot send an Authorization header
 * (and the console keeps its token out of URLs and cookies), and the relay itself learns a
 * desktop's state by asking the user's proxy, so an event stream would only move the same poll
 * into api-backend while holding a connection open per browser tab. One small GET every
 * POLL_MS, paused while the tab is hidden, also passes any proxy in between unchanged.
 */
import type { TargetHealth } from '@ctll/protocol';
import { describeError } from '../api';
import { formatTime, h, replace } from '../dom';
import { tunnelBase, type Page, type PageContext } from './page';
import { usageCard } from './usage-card';

const POLL_MS = 2_000;

/** `GET /api/tunnel/<user>/health`, as api-backend's tunnel routes answer it. */
interface TunnelHealth {
  desktop: 'online' | 'offline';
  connected: boolean;
  transport: 'ws' | 'poll' | 'zrok' | null;
  target: TargetHealth | null;
  proxy: string;
  activeRequests: number;
}

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

    let timer: number | undefined;
    let controller: AbortController | undefined;
    let stopped = false;

    const poll = async () => {
      if (stopped) return;
      controller = new AbortController();
      const began = performance.now();
      try {
        const health = await context.api.json<TunnelHealth>(`${tunnelBase(context.session)}/health`, { signal: controller.signal });
        show(health, Math.round(performance.now() - began));
      } catch (error) {
        if (stopped) return;
        state.className = 'state offline';
        state.textContent = 'Unknown';
        replace(facts, fact('Problem', describeError(error)));
      }
      schedule();
    };
    const schedule = () => {
      if (!stopped && !document.hidden) timer = window.setTimeout(poll, POLL_MS);
    };
    const onVisibility = () => {
      window.clearTimeout(timer);
      if (!document.hidden) void poll();
    };

    const show = (health: TunnelHealth, roundTripMs: number) => {
      const online = health.connected;
      state.className = `state ${online ? 'online' : 'offline'}`;
      state.textContent = online ? 'Connected' : 'Offline';
      replace(
        facts,
        fact('Transport', health.transport ? (TRANSPORTS[health.transport] ?? health.transport) : '—'),
        fact('Model server', online ? describeTarget(health.target) : '—'),
        fact('Requests in progress', String(health.activeRequests)),
        fact('Your relay proxy', health.proxy),
        fact('Round trip', `${roundTripMs} ms (this browser → relay → your proxy)`),
        fact('Checked', formatTime(new Date().toISOString())),
      );
      replace(help, online ? null : connectHelp(context));
    };

    document.addEventListener('visibilitychange', onVisibility);
    void poll();
    return {
      element,
      dispose() {
        stopped = true;
        window.clearTimeout(timer);
        controller?.abort();
        usage.dispose();
        document.removeEventListener('visibilitychange', onVisibility);
      },
    };
  },
};

function fact(term: string, detail: string): DocumentFragment {
  const fragment = document.createDocumentFragment();
  fragment.append(h('dt', {}, term), h('dd', {}, detail));
  return fragment;
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
