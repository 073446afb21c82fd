/**
 * Four projects: `unit` (co-located *.spec.ts, no servers), `integration` (test/integration, a real
 * nats-server per suite), `e2e` (test/e2e, the built reference driver as a child process) and
 * `faults` (test/faults: restarts, a 3-node cluster, bad input; each case prints an accounting row).
 * `faults` runs only the CI subset unless CONVEYOR_FAULTS=all (`npm run test:faults`).
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

/** The fault cases CI runs with `npm test` (cases 1, 2, 6 and 11); the rest need `npm run test:faults`. */
const FAULT_CI_CASES = [
  '01-single-node-restarts',
  '02-cluster-node-loss',
  '06-handler-faults',
  '11-bad-input',
];
const faultCases =
  process.env.CONVEYOR_FAULTS === 'all'
    ? ['<rootDir>/test/faults/**/*.fault-spec.ts']
    : FAULT_CI_CASES.map((name) => `<rootDir>/test/faults/${name}.fault-spec.ts`);

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
    {
      ...common,
      displayName: 'faults',
      testMatch: faultCases,
      setupFilesAfterEnv: ['<rootDir>/test/faults/support/fault-timeouts.ts'],
      globalSetup: '<rootDir>/test/faults/support/fault-suite.setup.ts',
      globalTeardown: '<rootDir>/test/faults/support/fault-suite.teardown.ts',
    },
  ],
};
