/**
 * The console's entry: reads the relay's sign-in settings, finishes a sign-in coming back from the
 * identity provider, then draws the signed-out view or the page the hash names (`#/pc`, `#/chat`,
 * ...). The token lives in memory only; with a refresh token it is renewed before it expires.
 */
import { AUTH_CONFIG_PATH, type AuthConfigResponse } from '@ctll/protocol/src/auth-config';
import { Api } from './api';
import { beginSignIn, completeSignIn, refresh, type TokenSet, type WebSignIn } from './auth/oidc';
import { readToken, SessionStore, type Session } from './auth/session';
import { h, replace } from './dom';
import { PAGES } from './pages';
import { forgetConversations } from './pages/chat';
import type { PageView } from './pages/page';
import type { Me } from '@ctll/protocol/src/operator-api';
import { signInView } from './pages/sign-in';

const store = new SessionStore();
let notice: string | null = null;
let renewal: number | undefined;
let refreshToken: string | null = null;
let view: PageView | undefined;

const api = new Api({
  token: () => store.get()?.token ?? null,
  onUnauthorized: () => signOut('Your sign-in expired or was refused: sign in again.'),
});

const main = document.getElementById('main')!;
const nav = document.getElementById('nav')!;
const who = document.getElementById('who')!;
const redirectUri = () => `${location.origin}/`;

async function start(): Promise<void> {
  const res = await fetch(AUTH_CONFIG_PATH, { credentials: 'omit' });
  const config = (await res.json()) as AuthConfigResponse;
  const web = config.mode === 'oidc' && config.webClientId ? (config as WebSignIn) : null;
  if (web) {
    try {
      const done = await completeSignIn(web, redirectUri(), new URLSearchParams(location.search));
      if (done) {
        history.replaceState(null, '', `/${done.returnTo}`);
        adopt(web, done.tokens);
      }
    } catch (error) {
      history.replaceState(null, '', '/');
      notice = (error as Error).message;
    }
  }
  const draw = () => render(config, web);
  window.addEventListener('hashchange', () => {
    draw();
    main.focus();
  });
  store.subscribe(draw);
  draw();
}

function adopt(web: WebSignIn, tokens: TokenSet): void {
  const { userId, expiresAt } = readToken(tokens.accessToken);
  refreshToken = tokens.refreshToken ?? refreshToken;
  store.set({ token: tokens.accessToken, userId, expiresAt, mode: 'oidc' });
  window.clearTimeout(renewal);
  if (refreshToken && expiresAt) {
    // Silent renewal at four fifths of the token's life, with the refresh token held in memory.
    const inMs = Math.max(5_000, (expiresAt - Date.now()) * 0.8);
    renewal = window.setTimeout(() => {
      refresh(web, refreshToken!).then(
        (next) => adopt(web, next),
        () => undefined, // The token still works until it expires; the next 401 signs out.
      );
    }, inMs);
  }
}

function signOut(message: string | null): void {
  window.clearTimeout(renewal);
  refreshToken = null;
  notice = message;
  forgetConversations();
  store.set(null);
}

/** What GET /api/me said of the session's token: whether it is an operator's. */
let operatorOf: { token: string; operator: boolean } | undefined;

/**
 * Whether the session is an operator's, as the relay decides (ADMIN_CLAIM); false until it has
 * said so, then `redraw` adds the operator's pages.
 */
function isOperator(session: Session, redraw: () => void): boolean {
  if (operatorOf?.token === session.token) return operatorOf.operator;
  const asked: { token: string; operator: boolean } = { token: session.token, operator: false };
  operatorOf = asked;
  api.json<Me>('/api/me').then(
    (me) => {
      if (operatorOf !== asked || !me.operator) return;
      asked.operator = true;
      redraw();
    },
    () => undefined, // Not an operator's view then; the other pages work as before.
  );
  return false;
}

function render(config: AuthConfigResponse, web: WebSignIn | null): void {
  view?.dispose?.();
  view = undefined;
  const session = store.get();
  if (!session) {
    replace(nav);
    replace(who);
    document.title = 'Sign in · CloudToLocalLLM';
    replace(
      main,
      signInView(config, notice, {
        beginOidc: () => beginSignIn(web!, redirectUri(), location.hash),
        signedIn: (next: Session) => {
          notice = null;
          store.set(next);
        },
      }),
    );
    return;
  }
  const wanted = location.hash.replace(/^#\/?/, '');
  const pages = PAGES.filter((p) => !p.forOperators || isOperator(session, () => render(config, web)));
  const page = pages.find((p) => p.path === wanted) ?? pages[0];
  replace(nav, ...pages.map((p) => h('a', { href: `#/${p.path}`, 'aria-current': p === page ? 'page' : null }, p.title)));
  const signOutButton = h('button', { type: 'button', class: 'secondary', id: 'sign-out' }, 'Sign out');
  signOutButton.addEventListener('click', () => signOut(null));
  replace(who, h('span', { id: 'who-user' }, session.userId), signOutButton);
  document.title = `${page.title} · CloudToLocalLLM`;
  view = page.render({ api, session });
  replace(main, view.element);
}

start().catch((error) => {
  replace(main, h('p', { class: 'error', role: 'alert' }, `The console could not start: ${(error as Error).message}`));
});
