/**
 * The console's pages, in navigation order. A page added here (an operator's view, say) gets its
 * navigation link and its `#/<path>` route with nothing else to change.
 */
import type { Page } from './page';
import { pcPage } from './pc';
import { chatPage } from './chat';
import { sessionsPage } from './sessions';
import { keysPage } from './keys';
import { operatorPage } from './operator';

export const PAGES: Page[] = [pcPage, chatPage, sessionsPage, keysPage, operatorPage];
