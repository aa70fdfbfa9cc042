/**
 * My keys: make a relay key (shown this once), list them, revoke one. Only the user's own sign-in
 * reaches /api/keys, so a leaked key can never make more.
 */
import { RELAY_KEY_SCOPES, type CreatedRelayKey, type RelayKeyView } from '@ctll/protocol/src/relay-keys';
import { describeError } from '../api';
import { formatTime, h, replace } from '../dom';
import type { Page, PageContext } from './page';

const SCOPE_HELP: Record<string, string> = {
  call: 'call — a script or app calls your model',
  bridge: 'bridge — a headless bridge connects your PC',
};

export const keysPage: Page = {
  path: 'keys',
  title: 'Keys',
  render(context: PageContext) {
    const name = h('input', { id: 'key-name', name: 'name', required: true, maxlength: 100, autocomplete: 'off' });
    const scope = h('select', { id: 'key-scope', name: 'scope' }, ...RELAY_KEY_SCOPES.map((s) => h('option', { value: s }, SCOPE_HELP[s] ?? s)));
    const expires = h('input', { id: 'key-expires', name: 'expires', type: 'date' });
    const created = h('div', { id: 'key-created', 'aria-live': 'polite' });
    const list = h('div', { class: 'table-wrap', id: 'key-list' });
    const status = h('p', { class: 'muted', role: 'status', 'aria-live': 'polite' });
    const form = h(
      'form',
      { class: 'card', 'aria-labelledby': 'new-key-title' },
      h('h2', { id: 'new-key-title' }, 'New key'),
      h('label', { for: 'key-name' }, 'Name'),
      name,
      h('label', { for: 'key-scope' }, 'Scope'),
      scope,
      h('label', { for: 'key-expires' }, 'Expires (optional)'),
      expires,
      h('div', { class: 'row' }, h('button', { type: 'submit', id: 'key-create' }, 'Create key')),
    );
    const element = h(
      'section',
      { 'aria-labelledby': 'page-title' },
      h('h1', { id: 'page-title' }, 'My keys'),
      form,
      created,
      h('div', { class: 'card' }, h('h2', {}, 'Your keys'), list, status),
    );

    const refresh = async () => {
      try {
        const { keys } = await context.api.json<{ keys: RelayKeyView[] }>('/api/keys');
        replace(list, keys.length ? table(keys, revoke) : h('p', {}, 'No keys.'));
        status.textContent = `${keys.length} key${keys.length === 1 ? '' : 's'}`;
      } catch (error) {
        status.textContent = describeError(error);
      }
    };

    const revoke = async (key: RelayKeyView) => {
      if (!window.confirm(`Revoke the key "${key.name}"? Whatever uses it stops working.`)) return;
      try {
        await context.api.send('DELETE', `/api/keys/${encodeURIComponent(key.id)}`);
        status.textContent = `Revoked "${key.name}".`;
      } catch (error) {
        status.textContent = describeError(error);
      }
      await refresh();
    };

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        // A date means "until the end of that day" in the person's own time zone.
        const expiresAt = expires.value ? new Date(`${expires.value}T23:59:59`).toISOString() : undefined;
        const key = await context.api.send<CreatedRelayKey>('POST', '/api/keys', { name: name.value.trim(), scope: scope.value, ...(expiresAt ? { expiresAt } : {}) });
        form.reset();
        replace(created, shownOnce(key!));
        (created.querySelector('button') as HTMLButtonElement | null)?.focus();
      } catch (error) {
        replace(created, h('p', { class: 'error', role: 'alert' }, describeError(error)));
      }
      await refresh();
    });

    void refresh();
    return { element };
  },
};

function shownOnce(key: CreatedRelayKey): HTMLElement {
  const copy = h('button', { type: 'button', class: 'secondary' }, 'Copy');
  copy.addEventListener('click', () => {
    void navigator.clipboard?.writeText(key.key).then(() => (copy.textContent = 'Copied'));
  });
  return h(
    'div',
    { class: 'card' },
    h('h2', {}, `Key "${key.name}" made`),
    h('p', {}, 'Copy it now: it is shown this once, and the relay keeps only its hash.'),
    h('p', { class: 'secret', id: 'key-secret' }, key.key),
    h('p', { class: 'muted' }, key.scope === 'call' ? `Use it as a bearer token at ${location.origin}/api/tunnel/${key.userId}` : `Start a bridge with: ctll-bridge --server ${location.origin} --token <key>`),
    h('div', { class: 'row' }, copy),
  );
}

function table(keys: RelayKeyView[], revoke: (key: RelayKeyView) => void): HTMLTableElement {
  return h(
    'table',
    {},
    h('thead', {}, h('tr', {}, ...['Name', 'Scope', 'Made', 'Expires', 'Last used', 'Action'].map((title) => h('th', { scope: 'col' }, title)))),
    h(
      'tbody',
      {},
      ...keys.map((key) =>
        h(
          'tr',
          {},
          h('td', {}, key.name),
          h('td', {}, key.scope),
          h('td', {}, formatTime(key.createdAt)),
          h('td', {}, key.expiresAt ? formatTime(key.expiresAt) : 'never'),
          h('td', {}, key.lastUsedAt ? formatTime(key.lastUsedAt) : 'not yet'),
          h('td', {}, h('button', { type: 'button', class: 'danger', 'aria-label': `Revoke ${key.name}`, onclick: () => revoke(key) }, 'Revoke')),
        ),
      ),
    ),
  );
}
