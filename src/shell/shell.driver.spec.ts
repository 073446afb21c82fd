import { stepEvents } from './shell.driver';

describe('stepEvents (which events run a pipeline’s steps)', () => {
  it('is create and process by default: a delete never starts a build', () => {
    expect(stepEvents(undefined)).toEqual(['create', 'process']);
    expect(stepEvents(' , ')).toEqual(['create', 'process']);
  });

  it('is replaced by SHELL_RUNNER_EVENTS (comma-separated)', () => {
    expect(stepEvents('create, process ,update')).toEqual(['create', 'process', 'update']);
  });
});
