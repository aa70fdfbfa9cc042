/** What every console page is: a path under `#/`, a title, and a function that draws it. */
import type { Api } from '../api';
import type { Session } from '../auth/session';

export interface PageContext {
  api: Api;
  session: Session;
}

export interface PageView {
  element: HTMLElement;
  /** Stops whatever the page still runs (polls, streams) when another page replaces it. */
  dispose?(): void;
}

export interface Page {
  /** The hash route, e.g. `pc` for `#/pc`. */
  path: string;
  /** The navigation label and the heading. */
  title: string;
  render(context: PageContext): PageView;
  /** Shown only to callers the relay calls operators (GET /api/me); everyone else never sees it. */
  forOperators?: boolean;
}

/** The base of the signed-in user's own tunnel. */
export function tunnelBase(session: Session): string {
  return `/api/tunnel/${encodeURIComponent(session.userId)}`;
}
