import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConveyorConfigError, resolveConveyorConfig } from './conveyor.options';

const SEED = 'SUAGMJH5XLGZKQQWAWKRZJIGMOU4HPFUYLXJMXOO5NLFEO2OOQJ5LPRDPM';

function problemsOf(run: () => unknown): string[] {
  try {
    run();
  } catch (err) {
    if (err instanceof ConveyorConfigError) return err.problems;
    throw err;
  }
  throw new Error('no ConveyorConfigError');
}

describe('NATS authentication options', () => {
  it('takes user/password out of the URL and never echoes it', () => {
    const config = resolveConveyorConfig(
      { driverName: 'd' },
      { CONVEYOR_NATS_URL: 'nats://alice:pa55word@h:4222' },
    );
    expect(config.servers).toEqual(['nats://h:4222']);
    expect(config.natsAuth).toEqual({ mode: 'user', user: 'alice', password: 'pa55word' });
    expect(config.redactor.redact('the password is pa55word')).toBe('the password is ***');
  });

  it('reads a token from the URL, and env options win over URL credentials', () => {
    expect(resolveConveyorConfig({ driverName: 'd', servers: 'nats://t0ken@h:1' }, {}).natsAuth).toEqual({
      mode: 'token',
      token: 't0ken',
    });
    const config = resolveConveyorConfig(
      { driverName: 'd', servers: 'nats://u:p1@h:1' },
      { CONVEYOR_NATS_TOKEN: 'env-token' },
    );
    expect(config.natsAuth).toEqual({ mode: 'token', token: 'env-token' });
    expect(config.servers).toEqual(['nats://h:1']);
  });

  it('refuses websocket URLs the Node client cannot use, without echoing credentials', () => {
    const problems = problemsOf(() =>
      resolveConveyorConfig({ driverName: 'd' }, { CONVEYOR_NATS_URL: 'wss://bob:hunter22@h:443' }),
    );
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/cannot use wss:\/\/ \(websocket\)/);
    expect(problems[0]).toContain('bob:***@h');
    expect(problems.join('\n')).not.toContain('hunter22');
  });

  it('refuses two authentication modes at once and a user without a password', () => {
    expect(
      problemsOf(() =>
        resolveConveyorConfig({ driverName: 'd' }, { CONVEYOR_NATS_TOKEN: 'tttt', CONVEYOR_NATS_USER: 'u' }),
      ),
    ).toEqual([expect.stringMatching(/user\/password, token are set, but NATS takes one way/)]);
    expect(problemsOf(() => resolveConveyorConfig({ driverName: 'd', natsAuth: { user: 'u' } }, {}))).toEqual(
      [expect.stringMatching(/user and password must be given together/)],
    );
  });

  it('checks nkey and creds files at startup and redacts their seeds', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nats-auth-'));
    const seedFile = join(dir, 'user.nk');
    writeFileSync(seedFile, `# a comment\n${SEED}\n`);
    const config = resolveConveyorConfig({ driverName: 'd' }, { CONVEYOR_NATS_NKEY: seedFile });
    expect(config.natsAuth).toEqual({ mode: 'nkey', nkeyFile: seedFile });
    expect(config.redactor.redact(`seed ${SEED}`)).toBe('seed ***');
    const notCreds = join(dir, 'bad.creds');
    writeFileSync(notCreds, SEED);
    expect(
      problemsOf(() => resolveConveyorConfig({ driverName: 'd' }, { CONVEYOR_NATS_CREDS: notCreds })),
    ).toEqual([expect.stringMatching(/is not a NATS credentials file/)]);
    expect(
      problemsOf(() =>
        resolveConveyorConfig({ driverName: 'd' }, { CONVEYOR_NATS_NKEY: join(dir, 'missing') }),
      ),
    ).toEqual([expect.stringMatching(/cannot read .*missing.*ENOENT/)]);
  });

  it('accepts TLS with a CA only', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nats-tls-'));
    const ca = join(dir, 'ca.pem');
    writeFileSync(ca, 'x');
    expect(resolveConveyorConfig({ driverName: 'd' }, { CONVEYOR_TLS_CA: ca }).tls).toEqual({ ca });
  });
});

describe('Loki and API auth options', () => {
  it('takes Loki credentials out of the URL; env fallbacks; never both modes', () => {
    const fromUrl = resolveConveyorConfig({ driverName: 'd' }, { LOKI_URL: 'http://lu:lokipw@loki:3100/' });
    expect(fromUrl.loki).toMatchObject({ url: 'http://loki:3100', username: 'lu', password: 'lokipw' });
    expect(fromUrl.redactor.redact('lokipw')).toBe('***');
    const bearer = resolveConveyorConfig(
      { driverName: 'd' },
      { LOKI_URL: 'http://loki:3100', LOKI_BEARER_TOKEN: 'bearer-123', LOKI_TENANT: 't1' },
    );
    expect(bearer.loki).toMatchObject({ bearerToken: 'bearer-123', tenant: 't1' });
    expect(
      problemsOf(() =>
        resolveConveyorConfig(
          { driverName: 'd' },
          { LOKI_URL: 'http://loki:3100', LOKI_USERNAME: 'a', LOKI_PASSWORD: 'b', LOKI_BEARER_TOKEN: 'c' },
        ),
      ),
    ).toEqual([expect.stringMatching(/either basic auth .* or LOKI_BEARER_TOKEN, not both/)]);
  });

  it('API auth needs a certificate and key, by default the NATS mTLS pair', () => {
    expect(
      problemsOf(() => resolveConveyorConfig({ driverName: 'd' }, { CONVEYOR_API_AUTH: 'true' })),
    ).toEqual([expect.stringMatching(/needs a certificate and its key: set CONVEYOR_API_AUTH_CERT/)]);
    const dir = mkdtempSync(join(tmpdir(), 'api-auth-'));
    const cert = join(dir, 'c.pem');
    const key = join(dir, 'k.pem');
    writeFileSync(cert, 'x');
    writeFileSync(key, 'x');
    const config = resolveConveyorConfig(
      { driverName: 'd' },
      { CONVEYOR_API_AUTH: 'true', CONVEYOR_TLS_CERT: cert, CONVEYOR_TLS_KEY: key },
    );
    expect(config.apiAuth).toEqual({ cert, key, ttlMs: 120_000 });
    expect(resolveConveyorConfig({ driverName: 'd' }, {}).apiAuth).toBeUndefined();
  });

  it('masks the configured secrets in run lines too, before the user mask', () => {
    const config = resolveConveyorConfig(
      { driverName: 'd', logs: { mask: (line) => line.replace('other', '###') } },
      { CONVEYOR_NATS_PASSWORD: 'natspw99', CONVEYOR_NATS_USER: 'u' },
    );
    expect(config.logs.mask!('echo natspw99 other')).toBe('echo *** ###');
  });
});
