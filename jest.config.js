// Suites .ci/run runs in a jest of their own (CTLL_SLOW=skip leaves them out of the main run): the
// six-minute streams and the minute-long signed-in bridge beside the rest; the deploy smoke (compose,
// then the swarm stack) and the replica failovers (twenty containers, or services, and bridges) alone after it; the
// browser tests of the web console alone afterwards (Chromium drops its connections whenever Docker
// adds or removes a network interface); the idle sweep with 200 proxy containers alone at the end.
// A plain `npm test` runs everything (the sweep with 25 proxies).
const SLOW_SUITES = [
  '/tests/long-streams\\.e2e\\.test\\.ts$',
  '/tests/signed-in-minute\\.e2e\\.test\\.ts$',
  '/tests/deploy\\.smoke\\.test\\.ts$',
  '/tests/console(-[a-z]+)?\\.e2e\\.test\\.ts$',
  '/tests/docker/docker-replica-failover\\.test\\.ts$',
  '/tests/docker/swarm-replica-failover\\.test\\.ts$',
  '/tests/docker/docker-sweep\\.test\\.ts$',
];

// The web console's browser tests need Debian's Chromium (tests/helpers/browser.ts). Where there is
// none they are left out, with a line saying so, as the Docker and Postgres suites skip without
// their servers; CI sets CTLL_REQUIRE_CHROMIUM=1 (and installs it), so there they always run.
const BROWSER_SUITES = ['/tests/console(-[a-z]+)?\\.e2e\\.test\\.ts$'];
const chromiumPath = process.env.CTLL_CHROMIUM ?? '/usr/bin/chromium';
const leaveOutBrowser = process.env.CTLL_REQUIRE_CHROMIUM !== '1' && !require('node:fs').existsSync(chromiumPath);
if (leaveOutBrowser) console.warn(`jest: the web console's browser tests are left out: no Chromium at ${chromiumPath} (apt install chromium, or set CTLL_CHROMIUM)`);

/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  // tsconfig's isolatedModules makes ts-jest transpile only (fast); `npm run typecheck` type-checks.
  transform: { '^.+\\.ts$': ['ts-jest', { diagnostics: false }] },
  testMatch: ['<rootDir>/**/test/**/*.test.ts', '<rootDir>/tests/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/', ...(process.env.CTLL_SLOW === 'skip' ? SLOW_SUITES : []), ...(leaveOutBrowser ? BROWSER_SUITES : [])],
  testTimeout: 60000,
  // Every error body a test receives is recorded, and tests/error-bodies.last.test.ts (run last by
  // the sequencer) checks that none of them carries the relay's internals.
  globalSetup: '<rootDir>/tests/helpers/global-setup.js',
  setupFiles: ['<rootDir>/tests/helpers/error-bodies.setup.ts'],
  testSequencer: '<rootDir>/tests/helpers/sequencer.js',
  // Every suite tears down what it started, but a few libraries keep handles past that (the
  // Docker events stream's socket, PGlite's worker): end the run when the last test is done
  // instead of hanging CI. `npx jest --detectOpenHandles` lists them when hunting for leaks.
  forceExit: true,
};
