import { perResourcePolicy, stepEvents } from './shell.driver';

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
