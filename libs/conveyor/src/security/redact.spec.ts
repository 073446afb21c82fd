import { SecretRedactor, redactText, redactUrl } from './redact';

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
});
