import { MASK_MAX_VALUES, SecretRedactor, maskDeep, redactText, redactUrl } from './redact';

describe('redaction', () => {
  it('hides passwords and tokens written into URLs', () => {
    expect(redactUrl('nats://user:pw@127.0.0.1:4222')).toBe('nats://user:***@127.0.0.1:4222');
    expect(redactUrl('nats://s3cret@h:4222')).toBe('nats://***@h:4222');
    expect(redactUrl('nats://h:4222')).toBe('nats://h:4222');
    expect(redactText('cannot reach http://a:b@loki:3100/x and tls://t@n:1')).toBe(
      'cannot reach http://a:***@loki:3100/x and tls://***@n:1',
    );
  });

  it('hides auth header values, nkey seeds and private keys', () => {
    const seed = 'SUAGMJH5XLGZKQQWAWKRZJIGMOU4HPFUYLXJMXOO5NLFEO2OOQJ5LPRDPM';
    const pem = '-----BEGIN PRIVATE KEY-----\nMIIEabc\n-----END PRIVATE KEY-----';
    expect(redactText(`Authorization: Bearer eyJ.a.b, Basic dXNlcjpwdw==, ${seed}, ${pem}`)).toBe(
      'Authorization: Bearer ***, Basic ***, ***, [private key]',
    );
  });

  it('hides configured values, longest first, but not values too short to be safe', () => {
    const redactor = new SecretRedactor(['abcd', 'abcdefgh', 'ab', undefined]);
    expect(redactor.secrets).toEqual(['abcdefgh', 'abcd']);
    expect(redactor.redact('x abcdefgh y abcd z ab')).toBe('x *** y *** z ab');
  });

  it('redacts configured values and patterns at any depth, Errors included, without touching the input', () => {
    const redactor = new SecretRedactor(['s3cretpw']);
    const seed = 'SUAGMJH5XLGZKQQWAWKRZJIGMOU4HPFUYLXJMXOO5NLFEO2OOQJ5LPRDPM';
    const input = {
      servers: ['nats://u:s3cretpw@h:4222', 'tls://tok3n@h:4222'],
      auth: {
        header: 'Bearer abc.def',
        seed,
        pem: '-----BEGIN EC PRIVATE KEY-----\nx\n-----END EC PRIVATE KEY-----',
      },
      failure: new Error(`cannot log in with s3cretpw`),
      count: 3,
    };
    const out = redactor.redactValue(input) as Record<string, Record<string, unknown>>;
    expect(out.servers).toEqual(['nats://u:***@h:4222', 'tls://***@h:4222']);
    expect(out.auth).toEqual({ header: 'Bearer ***', seed: '***', pem: '[private key]' });
    expect(out.failure).toMatchObject({ name: 'Error', message: 'cannot log in with ***' });
    expect(out.failure.stack).toMatch(/^Error: cannot log in with \*\*\*\n\s+at /);
    expect(out.count).toBe(3);
    // What JSON would print of an object with toJSON is what gets masked: a URL's href.
    expect(redactor.redactValue({ at: new URL('https://bob:s3cretpw@h/x') })).toEqual({
      at: 'https://bob:***@h/x',
    });
    expect(input.servers[0]).toBe('nats://u:s3cretpw@h:4222');
    expect(JSON.stringify(out)).not.toMatch(/s3cretpw|tok3n|abc\.def|SUAG|BEGIN/);
  });

  it('returns a value that needs nothing done as it is, and bounds what it walks', () => {
    const plain = { a: 'x', b: [1, { c: 'y' }], d: new Date(0) };
    expect(maskDeep(plain, (t) => t.replace('zzz', '***'))).toBe(plain);
    const wide = Array.from({ length: MASK_MAX_VALUES * 10 }, (_, i) => `v${i}`);
    const shown = maskDeep(wide) as string[];
    expect(shown).toHaveLength(MASK_MAX_VALUES + 1);
    expect(shown.at(-1)).toBe(`[… ${MASK_MAX_VALUES * 9} more]`);
    const keys = Object.fromEntries(wide.map((v) => [v, v]));
    const kept = maskDeep(keys) as Record<string, string>;
    expect(Object.keys(kept)).toHaveLength(MASK_MAX_VALUES + 1);
    expect(kept['…']).toBe(`${MASK_MAX_VALUES * 9} more keys`);
    const throwing = {
      get bad(): string {
        throw new Error('getter');
      },
      ok: 1,
    };
    expect(maskDeep({ throwing })).toEqual({ throwing: { bad: '[unreadable: getter]', ok: 1 } });
  });
});
