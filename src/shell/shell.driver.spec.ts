import { driverEnvForSteps, perResourcePolicy, stepEvents } from './shell.driver';

describe('stepEvents (which events run a pipeline’s steps)', () => {
  it('is create and process by default: a delete never starts a build', () => {
    expect(stepEvents(undefined)).toEqual(['create', 'process']);
    expect(stepEvents(' , ')).toEqual(['create', 'process']);
  });

  it('is replaced by SHELL_RUNNER_EVENTS (comma-separated)', () => {
    expect(stepEvents('create, process ,update')).toEqual(['create', 'process', 'update']);
  });
});

describe('perResourcePolicy (SHELL_RUNNER_PER_RESOURCE)', () => {
  it('is off unless set, and takes serialize or supersede', () => {
    expect(perResourcePolicy(undefined)).toBeUndefined();
    expect(perResourcePolicy(' ')).toBeUndefined();
    expect(perResourcePolicy('serialize')).toBe('serialize');
    expect(perResourcePolicy(' supersede ')).toBe('supersede');
  });

  it('refuses anything else, naming the variable', () => {
    expect(() => perResourcePolicy('queue')).toThrow(
      'SHELL_RUNNER_PER_RESOURCE="queue" must be "serialize" or "supersede"',
    );
  });
});

describe('driverEnvForSteps (what the driver passes its steps)', () => {
  it('passes the defaults and SHELL_RUNNER_PASS_ENV names, and warns about the CONVEYOR_* / LOKI_* ones it refuses', () => {
    const warnings: string[] = [];
    const env = driverEnvForSteps(
      {
        PATH: '/bin',
        CONVEYOR_NATS_PASSWORD: 'nats-secret',
        LOKI_BEARER_TOKEN: 'loki-secret',
        NPM_CONFIG_CACHE: '/cache/npm',
        SHELL_RUNNER_PASS_ENV: 'NPM_CONFIG_CACHE,CONVEYOR_NATS_PASSWORD',
      },
      (message) => warnings.push(message),
    );
    expect(env).toEqual({ PATH: '/bin', NPM_CONFIG_CACHE: '/cache/npm' });
    expect(warnings).toEqual([
      "SHELL_RUNNER_PASS_ENV: not passing CONVEYOR_NATS_PASSWORD to steps: the driver's own configuration " +
        'and credentials (CONVEYOR_*, LOKI_* or a copy of one) never reach a step',
    ]);
  });

  it('warns about nothing when nothing is refused', () => {
    const warnings: string[] = [];
    expect(driverEnvForSteps({ HOME: '/h', LOKI_URL: 'http://loki:3100' }, (m) => warnings.push(m))).toEqual({
      HOME: '/h',
    });
    expect(warnings).toEqual([]);
  });
});
