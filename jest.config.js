/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  // tsconfig's isolatedModules makes ts-jest transpile only (fast); `npm run typecheck` type-checks.
  transform: { '^.+\\.ts$': ['ts-jest', { diagnostics: false }] },
  testMatch: ['<rootDir>/**/test/**/*.test.ts', '<rootDir>/tests/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
  testTimeout: 30000,
  // Child processes (proxies, bridges) are ended by each suite's teardown; this catches leaks.
  detectOpenHandles: false,
};
