// Jest 29 has no per-project `testTimeout`: suites against real servers get a longer budget here.
jest.setTimeout(120_000);
