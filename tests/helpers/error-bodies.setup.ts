// Runs before every test file (jest.config.js `setupFiles`): record the error bodies it receives.
import { recordErrorBodies } from './error-bodies';

recordErrorBodies();
