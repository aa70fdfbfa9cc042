/**
 * Operator: the relay at a glance, for callers whose sign-in carries the operator role
 * (ADMIN_CLAIM; the navigation shows this page only when GET /api/me says so). Capacity, connected
 * desktops by transport, proxies and desktops per minute, recent errors by code, and every proxy by
 * owner hash with a Stop button that asks first. Polled like My PC, paused while the tab is hidden.
 */
import type { OperatorOverview, OperatorProxy } from '@ctll/protocol/src/operator-api';
import { describeError } from '../api';
import { lineChart } from '../chart';
import { formatBytes, h, replace } from '../dom';
import type { Page, PageContext } from './page';

const POLL_MS = 5_000;
const HOUR_MS = 3_600_000;

export const operatorPage: Page = {
  path: 'operator',
  title: 'Operator',
  forOperators: true,
  render(context: PageContext) {
    const status = h('p', { class: 'muted', id: 'operator-status', role: 'status', 'aria-live': 'polite' }, 'Loading…');
    const summary = h('dl', { class: 'facts', id: 'operator-summary' });
    const chart = h('div', { id: 'operator-chart' });
    const errors = h('div', { class: 'table-wrap', id: 'operator-errors' });
    const proxies = h('div', { class: 'table-wrap', id: 'operator-proxies' });
    const element = h(
      'section',
      { 'aria-labelledby': 'page-title' },
      h('h1', { id: 'page-title' }, 'Operator'),
      h('div', { class: 'card' }, summary, status),
      h('div', { class: 'card' }, h('h2', {}, 'Proxies and desktops, last hour'), chart),
      h('div', { class: 'card' }, h('h2', {}, 'Proxies'), proxies),
      h('div', { class: 'card' }, h('h2', {}, 'Errors, last hour'), errors),
    );

    let timer: number | undefined;
    let stopped = false;

    const poll = async () => {
      if (stopped) return;
      window.clearTimeout(timer);
      try {
        show(await context.api.json<OperatorOverview>('/api/admin/overview'));
      } catch (error) {
        if (stopped) return;
        status.textContent = describeError(error);
      }
      if (!stopped && !document.hidden) timer = window.setTimeout(poll, POLL_MS);
    };

    const stop = async (proxy: OperatorProxy) => {
      if (!window.confirm(`Stop the proxy of user ${proxy.owner}? Their desktop is cut off until it reconnects.`)) return;
      try {
        const answer = await context.api.send<{ stopped: boolean }>('POST', `/api/admin/proxies/${encodeURIComponent(proxy.owner)}/stop`);
        status.textContent = answer?.stopped ? `Stopped the proxy of ${proxy.owner}.` : `No proxy of ${proxy.owner} was running.`;
      } catch (error) {
        status.textContent = describeError(error);
      }
      await poll();
    };

    const show = (overview: OperatorOverview) => {
      const { capacity, desktops } = overview;
      replace(
        summary,
        fact('Proxies', `${capacity.running} of ${capacity.max} (${overview.driver} driver)`),
        fact('Desktops', `${desktops.ws} WebSocket · ${desktops.poll} long-polling · ${desktops.zrok} zrok`),
        fact('Checked', new Date(overview.at).toLocaleTimeString()),
      );
      const now = Date.parse(overview.at);
      const points = (value: (s: OperatorOverview['series'][number]) => number) => overview.series.map((s) => ({ at: Date.parse(s.at), value: value(s) }));
      replace(
        chart,
        lineChart('Proxies and connected desktops per minute over the last hour', [
          { label: 'Proxies', className: 'chart-a', points: points((s) => s.proxies) },
          { label: 'Desktops', className: 'chart-b', points: points((s) => s.desktops.ws + s.desktops.poll + s.desktops.zrok) },
        ], now - HOUR_MS, now),
      );
      replace(proxies, overview.proxies.length ? proxyTable(overview.proxies, (proxy) => void stop(proxy)) : h('p', {}, 'No proxies run.'));
      replace(errors, overview.errors.length ? errorTable(overview) : h('p', {}, 'No errors in the last hour.'));
      if (status.textContent === 'Loading…') status.textContent = '';
    };

    const onVisibility = () => {
      if (!document.hidden) void poll();
    };
    document.addEventListener('visibilitychange', onVisibility);
    void poll();
    return {
      element,
      dispose() {
        stopped = true;
        window.clearTimeout(timer);
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

function duration(ms: number | null): string {
  if (ms === null) return '—';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function proxyTable(list: OperatorProxy[], stop: (proxy: OperatorProxy) => void): HTMLTableElement {
  const headings = ['User (hash)', 'State', 'Desktop', 'Age', 'Idle', 'Memory', 'In flight', 'Action'];
  return h(
    'table',
    { id: 'operator-proxy-table' },
    h('thead', {}, h('tr', {}, ...headings.map((title) => h('th', { scope: 'col' }, title)))),
    h(
      'tbody',
      {},
      ...list.map((proxy) =>
        h(
          'tr',
          { 'data-owner': proxy.owner },
          h('td', { class: 'mono' }, proxy.owner),
          h('td', {}, proxy.reachable ? proxy.state : `${proxy.state} (not answering)`),
          h('td', {}, proxy.transport ?? 'none'),
          h('td', {}, duration(proxy.ageMs)),
          h('td', {}, duration(proxy.idleMs)),
          h('td', {}, proxy.memoryBytes === null ? '—' : formatBytes(proxy.memoryBytes)),
          h('td', {}, proxy.activeRequests === null ? '—' : String(proxy.activeRequests)),
          h('td', {}, h('button', { type: 'button', class: 'danger', 'aria-label': `Stop the proxy of ${proxy.owner}`, onclick: () => stop(proxy) }, 'Stop')),
        ),
      ),
    ),
  );
}

function errorTable(overview: OperatorOverview): HTMLTableElement {
  return h(
    'table',
    {},
    h('thead', {}, h('tr', {}, ...['Code', 'Status', 'Count', 'Last'].map((title) => h('th', { scope: 'col' }, title)))),
    h('tbody', {}, ...overview.errors.map((e) => h('tr', {}, h('td', { class: 'mono' }, e.code), h('td', {}, String(e.status)), h('td', {}, String(e.count)), h('td', {}, new Date(e.lastAt).toLocaleTimeString())))),
  );
}
