/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  // isolatedModules: transpile only (fast); `npm run typecheck` does the type checking.
  transform: { '^.+\\.ts$': ['ts-jest', { isolatedModules: true, diagnostics: false }] },
  testMatch: ['<rootDir>/**/test/**/*.test.ts', '<rootDir>/tests/**/*.test.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
  testTimeout: 30000,
  // Child processes (proxies, bridges) are ended by each suite's teardown; this catches leaks.
  detectOpenHandles: false,
};
