/**
 * The signed-out view. With a real identity provider: one button into the authorization code
 * flow. Under dev auth: a user id (the relay's dev issuer signs a token for it, from this machine
 * only) or a token pasted from `npm run token -- <user>`.
 */
import type { AuthConfigResponse } from '@ctll/protocol';
import { describeError } from '../api';
import { devSignIn } from '../auth/dev';
import { readToken, type Session } from '../auth/session';
import { h } from '../dom';

export interface SignInActions {
  /** Starts the provider's sign-in (leaves the page). */
  beginOidc(): Promise<void>;
  signedIn(session: Session): void;
}

export function signInView(config: AuthConfigResponse, notice: string | null, actions: SignInActions): HTMLElement {
  const error = h('p', { class: 'error', role: 'alert', id: 'sign-in-error' }, notice ?? '');
  const show = (failure: unknown) => (error.textContent = failure instanceof Error && !('code' in failure) ? failure.message : describeError(failure));
  const heading = h('h1', { id: 'page-title' }, 'Sign in');
  const section = h('section', { 'aria-labelledby': 'page-title' }, heading);

  if (config.mode === 'oidc') {
    if (!config.webClientId) {
      section.append(h('p', {}, 'This relay has no web sign-in: its operator has not set OIDC_WEB_CLIENT_ID.'));
      return section;
    }
    const button = h('button', { type: 'button', id: 'sign-in-oidc' }, 'Sign in');
    button.addEventListener('click', () => {
      button.disabled = true;
      actions.beginOidc().catch((failure) => {
        button.disabled = false;
        show(failure);
      });
    });
    section.append(h('div', { class: 'card' }, h('p', {}, 'Sign in with your account to see your PC and chat with your model.'), button), error);
    return section;
  }

  const userId = h('input', { id: 'dev-user', name: 'user', required: true, autocomplete: 'username', value: 'alice' });
  const devForm = h(
    'form',
    { class: 'card', 'aria-labelledby': 'dev-title' },
    h('h2', { id: 'dev-title' }, 'Dev sign-in'),
    h('p', { class: 'muted' }, 'This relay runs dev auth (no identity provider): pick any user id. Works from a browser on the relay\'s own machine.'),
    h('label', { for: 'dev-user' }, 'User id'),
    userId,
    h('div', { class: 'row' }, h('button', { type: 'submit', id: 'dev-sign-in' }, 'Sign in')),
  );
  devForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const answer = await devSignIn(userId.value.trim());
      actions.signedIn({ token: answer.token, userId: answer.userId, expiresAt: Date.parse(answer.expiresAt), mode: 'dev' });
    } catch (failure) {
      show(failure);
    }
  });

  const pasted = h('textarea', { id: 'dev-token', name: 'token', rows: 3, required: true, autocomplete: 'off', spellcheck: 'false' });
  const tokenForm = h(
    'form',
    { class: 'card', 'aria-labelledby': 'paste-title' },
    h('h2', { id: 'paste-title' }, 'Or use a token'),
    h('label', { for: 'dev-token' }, 'Token from npm run --silent token -- <user>'),
    pasted,
    h('div', { class: 'row' }, h('button', { type: 'submit', class: 'secondary' }, 'Use token')),
  );
  tokenForm.addEventListener('submit', (event) => {
    event.preventDefault();
    try {
      const token = pasted.value.trim();
      actions.signedIn({ token, ...readToken(token), mode: 'dev' });
    } catch (failure) {
      show(failure);
    }
  });
  section.append(devForm, tokenForm, error);
  return section;
}
