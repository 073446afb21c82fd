import { MAX_TIMER_MS, echo, flag, milliseconds, readOptions, suggestion } from './option-schema';

describe('option schema', () => {
  it.each([
    [true, true],
    ['TRUE', true],
    [' 1 ', true],
    [0, false],
    ['false', false],
  ])('reads %j as %p', (input, value) => {
    expect(flag(input)).toEqual({ value });
  });

  it.each(['yes', 'no', 'on', 'off', '', 2, null])('refuses %j as a boolean', (input) => {
    expect(flag(input)).toEqual({ error: 'must be true or false (or 1 or 0)' });
  });

  it('bounds milliseconds by what a Node timer can wait', () => {
    expect(milliseconds(0)(MAX_TIMER_MS)).toEqual({ value: MAX_TIMER_MS });
    expect(milliseconds(0)(String(MAX_TIMER_MS + 1))).toEqual({
      error: expect.stringContaining(`<= ${MAX_TIMER_MS}`),
    });
  });

  it('suggests the nearest option only when it is near enough to be a typo', () => {
    const known = ['concurrency', 'ackMode', 'timeoutMs'];
    expect(suggestion('concurency', known)).toBe('concurrency');
    expect(suggestion('ACKMODE', known)).toBe('ackMode');
    expect(suggestion('timeout', known)).toBe('timeoutMs');
    expect(suggestion('mode', known)).toBeUndefined();
  });

  it('echoes strings redacted (even a URL missing its //), then shortened; objects by kind only', () => {
    expect(echo('htps://admin:s3cretPW@api')).toBe('"htps://admin:***@api"');
    expect(echo('admin:s3cretPW@api')).toBe('"admin:***@api"');
    expect(echo('Bearer abc.def.ghi')).toBe('"Bearer ***"');
    expect(echo(`${'x'.repeat(200)}`)).toBe(`"${'x'.repeat(120)}…"`);
    expect(echo({ password: 'pw' })).toBe('an object');
    expect(echo(['a'])).toBe('an array');
    expect(echo(() => 1)).toBe('a function');
    expect(echo(1.5)).toBe('1.5');
  });

  it('reads code, else trimmed env, else the default, and says which were given', () => {
    const problems: string[] = [];
    const { values, explicit } = readOptions(
      'logs',
      { a: 2 },
      {
        a: { env: 'A', parse: milliseconds(0), default: 1 },
        b: { env: 'B', parse: milliseconds(0), default: 1 },
        c: { env: 'C', parse: milliseconds(0), default: 1 },
      },
      { A: '3', B: ' 4 ', C: '   ' },
      problems,
    );
    expect(problems).toEqual([]);
    expect(values).toEqual({ a: 2, b: 4, c: 1 });
    expect([...explicit]).toEqual(['a', 'b']);
  });

  it('refuses a section that is not an object', () => {
    const problems: string[] = [];
    readOptions('logs', 'verbose', {}, {}, problems);
    expect(problems).toEqual(['option "logs": must be an object, got "verbose"']);
  });
});
