/**
 * My PC's usage: requests and bytes today, and a chart of each per minute over the last hour, as
 * the user's own relay proxy counted them (GET /api/me/usage). Read every REFRESH_MS while the
 * page is open; nothing is counted while no proxy runs, and the card says so.
 */
import type { MeUsage, UsageMinute } from '@ctll/protocol/src/proxy-api';
import { describeError, type Api } from '../api';
import { lineChart } from '../chart';
import { formatBytes, formatTime, h, replace } from '../dom';

const REFRESH_MS = 10_000;
const HOUR_MS = 3_600_000;

export function usageCard(api: Api): { element: HTMLElement; dispose(): void } {
  const facts = h('dl', { class: 'facts', id: 'usage-today' });
  const charts = h('div', { id: 'usage-chart' });
  const element = h('div', { class: 'card' }, h('h2', {}, 'Usage'), facts, charts);
  let timer: number | undefined;
  let stopped = false;

  const refresh = async () => {
    try {
      show(await api.json<MeUsage>('/api/me/usage'));
    } catch (error) {
      if (!stopped) replace(facts, fact('Usage', describeError(error)));
    }
    if (!stopped) timer = window.setTimeout(refresh, REFRESH_MS);
  };

  const show = (usage: MeUsage) => {
    if (!usage.running) {
      replace(facts, fact('Usage', 'nothing counted: your relay proxy is not running'));
      replace(charts);
      return;
    }
    const { today, minutes } = usage;
    replace(
      facts,
      fact('Requests today', String(today.requests)),
      fact('Bytes today', `${formatBytes(today.bytesFromDesktop)} from your PC · ${formatBytes(today.bytesToDesktop)} to it`),
      fact('Counted since', formatTime(today.since)),
    );
    const now = Date.parse(minutes.at(-1)?.at ?? new Date().toISOString()) + 60_000;
    const per = (value: (minute: UsageMinute) => number) => minutes.map((minute) => ({ at: Date.parse(minute.at), value: value(minute) }));
    replace(
      charts,
      lineChart('Your requests per minute over the last hour', [{ label: 'Requests this minute', className: 'chart-a', points: per((m) => m.requests) }], now - HOUR_MS, now),
      lineChart('Bytes from and to your PC per minute over the last hour', [{ label: 'Bytes this minute', className: 'chart-b', points: per((m) => m.bytesFromDesktop + m.bytesToDesktop) }], now - HOUR_MS, now),
    );
  };

  void refresh();
  return {
    element,
    dispose() {
      stopped = true;
      window.clearTimeout(timer);
    },
  };
}

function fact(term: string, detail: string): DocumentFragment {
  const fragment = document.createDocumentFragment();
  fragment.append(h('dt', {}, term), h('dd', {}, detail));
  return fragment;
}
