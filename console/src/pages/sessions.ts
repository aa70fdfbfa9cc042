/** My sessions: the audit's record of the user's proxy and tunnel sessions, newest first, a page at a time. */
import type { SessionView } from '../../../api-backend/src/audit/sessions';
import { describeError } from '../api';
import { formatBytes, formatTime, h, replace } from '../dom';
import type { Page, PageContext } from './page';

const PAGE_SIZE = 10;

interface SessionsAnswer {
  sessions: SessionView[];
  next: string | null;
}

export const sessionsPage: Page = {
  path: 'sessions',
  title: 'Sessions',
  render(context: PageContext) {
    const body = h('div', { class: 'table-wrap', id: 'sessions-table' });
    const newer = h('button', { type: 'button', class: 'secondary', disabled: true }, 'Newer');
    const older = h('button', { type: 'button', class: 'secondary', disabled: true }, 'Older');
    const status = h('p', { class: 'muted', role: 'status', 'aria-live': 'polite' });
    const element = h(
      'section',
      { 'aria-labelledby': 'page-title' },
      h('h1', { id: 'page-title' }, 'My sessions'),
      h('p', { class: 'muted' }, 'When your relay proxy ran and your PC was connected, and how much went through. The relay keeps no prompt or answer.'),
      h('div', { class: 'card' }, body, h('div', { class: 'row' }, newer, older), status),
    );

    // The cursors of the pages before this one: "Newer" goes back one.
    const cursors: Array<string | undefined> = [];
    let current: string | undefined;
    let next: string | null = null;

    const load = async (cursor: string | undefined) => {
      status.textContent = 'Loading…';
      try {
        const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
        if (cursor) query.set('cursor', cursor);
        const page = await context.api.json<SessionsAnswer>(`/api/audit/sessions?${query}`);
        current = cursor;
        next = page.next;
        replace(body, page.sessions.length ? table(page.sessions) : h('p', {}, 'No sessions yet.'));
        status.textContent = `Page ${cursors.length + 1}`;
      } catch (error) {
        status.textContent = describeError(error);
      }
      newer.disabled = cursors.length === 0;
      older.disabled = next === null;
    };

    older.addEventListener('click', () => {
      if (next === null) return;
      cursors.push(current);
      void load(next);
    });
    newer.addEventListener('click', () => {
      if (cursors.length === 0) return;
      void load(cursors.pop());
    });
    void load(undefined);
    return { element };
  },
};

function table(sessions: SessionView[]): HTMLTableElement {
  return h(
    'table',
    {},
    h('caption', { class: 'muted' }, 'Sessions, newest first'),
    h('thead', {}, h('tr', {}, ...['What', 'Started', 'Ended', 'Requests', 'Bytes to / from PC', 'Why it ended'].map((title) => h('th', { scope: 'col' }, title)))),
    h(
      'tbody',
      {},
      ...sessions.map((s) =>
        h(
          'tr',
          {},
          h('td', {}, s.kind === 'proxy' ? `Relay proxy (${s.driver})` : `PC connected (${s.transport === 'ws' ? 'WebSocket' : 'long-polling'}${s.client ? `, ${s.client}` : ''})`),
          h('td', {}, formatTime(s.startedAt)),
          h('td', {}, s.endedAt ? formatTime(s.endedAt) : 'still running'),
          h('td', {}, s.kind === 'tunnel' && s.requests !== null ? String(s.requests) : '—'),
          h('td', {}, s.kind === 'tunnel' && s.bytesToDesktop !== null ? `${formatBytes(s.bytesToDesktop)} / ${formatBytes(s.bytesFromDesktop ?? 0)}` : '—'),
          h('td', {}, s.reason ?? '—'),
        ),
      ),
    ),
  );
}
