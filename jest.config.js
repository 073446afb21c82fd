/**
 * Three projects: `unit` (co-located *.spec.ts, no servers), `integration` (test/integration, a real
 * nats-server per suite) and `e2e` (test/e2e, the built reference driver as a child process).
 * The global setup makes sure a nats-server >= 2.10.27 exists; the global teardown kills anything a
 * harness spawned, even when a suite crashed.
 */
const transform = {
  '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.json', diagnostics: false }],
};
const moduleNameMapper = {
  '^@conveyor-ci/nestjs$': '<rootDir>/libs/conveyor/src',
  '^@conveyor-ci/nestjs/(.*)$': '<rootDir>/libs/conveyor/src/$1',
  '^@conveyor-ci/testing$': '<rootDir>/libs/testing/src',
  '^@conveyor-ci/testing/(.*)$': '<rootDir>/libs/testing/src/$1',
};
const common = {
  rootDir: __dirname,
  testEnvironment: 'node',
  transform,
  moduleNameMapper,
  moduleFileExtensions: ['ts', 'js', 'json'],
};

module.exports = {
  globalSetup: '<rootDir>/libs/testing/src/jest/global-setup.ts',
  globalTeardown: '<rootDir>/libs/testing/src/jest/global-teardown.ts',
  maxWorkers: 2,
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/{libs,src,apps}/**/*.spec.ts'] },
    {
      ...common,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/integration/**/*.spec.ts'],
      setupFilesAfterEnv: ['<rootDir>/test/support/jest-timeouts.ts'],
    },
    {
      ...common,
      displayName: 'e2e',
      testMatch: ['<rootDir>/test/e2e/**/*.e2e-spec.ts'],
      setupFilesAfterEnv: ['<rootDir>/test/support/jest-timeouts.ts'],
    },
  ],
};
