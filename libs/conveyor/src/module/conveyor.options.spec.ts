import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { ConveyorConfigError, ConveyorModuleOptions, resolveConveyorConfig } from './conveyor.options';

describe('resolveConveyorConfig', () => {
  it('applies the documented defaults', () => {
    const config = resolveConveyorConfig({ driverName: 'd' }, {});
    const { retryDelayMs, redactor, ...rest } = config;
    expect(redactor.secrets).toEqual([]);
    expect(rest).toEqual({
      driverName: 'd',
      servers: ['nats://127.0.0.1:4222'],
      apiUrl: 'http://localhost:8080',
      client: expect.objectContaining({ apiUrl: 'http://localhost:8080', timeoutMs: 10_000, retries: 3 }),
      retryApiErrors: true,
      concurrency: 1,
      ackMode: 'afterResult',
      maxAckPending: 1000,
      ackWaitMs: 30_000,
      maxAttempts: 3,
      reconcileTimeoutMs: 3_600_000,
      cleanupTimeoutMs: 10_000,
      deadLetterTimeoutMs: 10_000,
      cancelTtlMs: 3_600_000,
      leaseTtlMs: 30_000,
      shutdownTimeoutMs: 25_000,
      unroutedDeadLetterMs: 3_600_000,
      incompatibleConsumer: 'warn',
      resourceDrift: 'warn',
      consumerFilters: 'merge',
      staleEventGuard: false,
      logs: {
        conveyor: true,
        timestampFormat: 'rfc3339',
        legacySubject: false,
        maxLineBytes: 32 * 1024,
        oversize: 'split',
        maxBufferLines: 100_000,
        maxBufferBytes: 64 * 1024 * 1024,
        maxTotalBytes: 64 * 1024 * 1024,
        streamsToProcessLog: false,
        processLogBytesPerSecond: 256 * 1024,
        flushTimeoutMs: 5000,
      },
      explicit: new Set(['driverName']),
    });
    // Exponential from 1 s, doubling, capped at 60 s, ±20 % jitter.
    for (const [attempt, base] of [
      [1, 1000],
      [2, 2000],
      [3, 4000],
      [10, 60_000],
    ]) {
      const delay = retryDelayMs(attempt);
      expect(delay).toBeGreaterThanOrEqual(base * 0.8);
      expect(delay).toBeLessThanOrEqual(base * 1.2);
    }
  });

  it('reads retry and dead-letter settings from options and env, and checks them', () => {
    const fromEnv = resolveConveyorConfig(
      { driverName: 'd' },
      {
        CONVEYOR_MAX_ATTEMPTS: '5',
        CONVEYOR_BACKOFF_INITIAL_MS: '100',
        CONVEYOR_BACKOFF_MAX_MS: '100',
        CONVEYOR_DEAD_LETTER_SUBJECT: 'events.deadletter.d',
      },
    );
    expect(fromEnv).toMatchObject({ maxAttempts: 5, deadLetterSubject: 'events.deadletter.d' });
    expect(fromEnv.retryDelayMs(7)).toBeLessThanOrEqual(120);
    const curve = resolveConveyorConfig(
      { driverName: 'd', backoff: (n) => (n === 2 ? Number.NaN : n * 7) },
      {},
    ).retryDelayMs;
    expect(curve(3)).toBe(21);
    expect(curve(2)).toBeGreaterThanOrEqual(1600); // a broken curve falls back to the default one
    const hook = () => undefined;
    expect(resolveConveyorConfig({ driverName: 'd', onDeadLetter: hook }, {}).onDeadLetter).toBe(hook);

    expect(() =>
      resolveConveyorConfig(
        {
          driverName: 'd',
          maxAttempts: 0,
          backoff: { initialMs: 500, maxMs: 100 },
          deadLetterSubject: 'events.>',
          onDeadLetter: 'log' as never,
        },
        { CONVEYOR_BACKOFF_INITIAL_MS: 'soon' },
      ),
    ).toThrow(
      new ConveyorConfigError([
        'option "maxAttempts" (env CONVEYOR_MAX_ATTEMPTS): must be a whole number >= 1, got 0',
        'option "deadLetterSubject" (env CONVEYOR_DEAD_LETTER_SUBJECT): must be a NATS subject of dot-separated tokens without wildcards or whitespace, got "events.>"',
        'option "onDeadLetter": must be a function (record) => void | Promise<void>, got "log"',
        'option "backoff": maxMs (100) is below initialMs (500)',
      ]),
    );
    expect(() => resolveConveyorConfig({ driverName: 'd' }, { CONVEYOR_BACKOFF_INITIAL_MS: 'soon' })).toThrow(
      'option "backoff.initialMs" from env CONVEYOR_BACKOFF_INITIAL_MS="soon": must be a whole number >= 0 and <= 2147483647',
    );
  });

  it('reads every option from the environment and marks it explicit', () => {
    const config = resolveConveyorConfig(
      {},
      {
        CONVEYOR_DRIVER_NAME: 'env-driver',
        CONVEYOR_NATS_URL: 'nats://a:4222, tls://b:4223',
        CONVEYOR_API_URL: 'https://conveyor.example.test/',
        CONVEYOR_CONCURRENCY: '4',
        CONVEYOR_ACK_MODE: 'onReceive',
        CONVEYOR_MAX_ACK_PENDING: '50',
        CONVEYOR_ACK_WAIT_MS: '5000',
        CONVEYOR_RECONCILE_TIMEOUT_MS: '0',
        CONVEYOR_SHUTDOWN_TIMEOUT_MS: '1000',
        CONVEYOR_INCOMPATIBLE_CONSUMER: 'refuse',
        CONVEYOR_CONSUMER_FILTERS: 'replace',
        CONVEYOR_STALE_EVENT_GUARD: 'true',
        CONVEYOR_RESOURCE_DRIFT: 'refuse',
      },
    );
    expect(config).toMatchObject({
      driverName: 'env-driver',
      servers: ['nats://a:4222', 'tls://b:4223'],
      apiUrl: 'https://conveyor.example.test',
      concurrency: 4,
      ackMode: 'onReceive',
      maxAckPending: 50,
      ackWaitMs: 5000,
      reconcileTimeoutMs: 0,
      shutdownTimeoutMs: 1000,
      incompatibleConsumer: 'refuse',
      resourceDrift: 'refuse',
      consumerFilters: 'replace',
      staleEventGuard: true,
    });
    expect(config.explicit.has('maxAckPending')).toBe(true);
    expect(config.explicit.has('ackWaitMs')).toBe(true);
  });

  it('prefers options given in code over the environment', () => {
    const config = resolveConveyorConfig(
      { driverName: 'code', concurrency: 2 },
      { CONVEYOR_DRIVER_NAME: 'env', CONVEYOR_CONCURRENCY: '9' },
    );
    expect(config).toMatchObject({ driverName: 'code', concurrency: 2 });
  });

  it.each([
    [{ CONVEYOR_SERVER_HOST: 'http://legacy:9000' }, 'http://legacy:9000'],
    [{ CONVEYOR_SERVER_HOST: 'conveyor', CONVEYOR_SERVER_PORT: '8181' }, 'http://conveyor:8181'],
    [{ CONVEYOR_SERVER_HOST: 'conveyor' }, 'http://conveyor:8080'],
    [{ CONVEYOR_API_URL: 'http://new:1', CONVEYOR_SERVER_HOST: 'old' }, 'http://new:1'],
  ])('derives apiUrl from %j', (env, apiUrl) => {
    expect(resolveConveyorConfig({ driverName: 'd' }, env).apiUrl).toBe(apiUrl);
  });

  it('lists every problem, naming the option, the env var and why', () => {
    let error: ConveyorConfigError | undefined;
    try {
      resolveConveyorConfig(
        { concurrency: 1.5, servers: 'http://wrong:80' },
        { CONVEYOR_ACK_MODE: 'sometimes', CONVEYOR_ACK_WAIT_MS: '10', CONVEYOR_API_URL: 'ftp://x' },
      );
    } catch (err) {
      error = err as ConveyorConfigError;
    }
    expect(error).toBeInstanceOf(ConveyorConfigError);
    expect(error!.problems).toEqual([
      'option "driverName" (env CONVEYOR_DRIVER_NAME) is required',
      'option "servers" (env CONVEYOR_NATS_URL): "http://wrong:80" is not a NATS URL (nats://host:port or tls://host:port)',
      'option "concurrency" (env CONVEYOR_CONCURRENCY): must be a whole number >= 1, got 1.5',
      'option "ackMode" from env CONVEYOR_ACK_MODE="sometimes": must be one of "afterResult", "onReceive"',
      'option "ackWaitMs" from env CONVEYOR_ACK_WAIT_MS="10": must be a whole number >= 1000 and <= 2147483647 (2^31-1 ms, about 24.8 days: Node fires a longer timer at once)',
      'option "apiUrl" from env CONVEYOR_API_URL="ftp://x": must be an http(s) URL such as http://localhost:8080',
    ]);
    expect(error!.message).toMatch(/^Invalid Conveyor configuration:\n {2}- option "driverName"/);
  });

  it('prints as its message alone when Nest logs it: no injector stack, no second copy of the list', () => {
    let error: unknown;
    try {
      resolveConveyorConfig({ driverName: 'd', concurrency: 0 }, {});
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConveyorConfigError);
    expect((error as ConveyorConfigError).problems).toEqual([
      'option "concurrency" (env CONVEYOR_CONCURRENCY): must be a whole number >= 1, got 0',
    ]);
    expect(inspect(error)).toBe(
      'ConveyorConfigError: Invalid Conveyor configuration:\n' +
        '  - option "concurrency" (env CONVEYOR_CONCURRENCY): must be a whole number >= 1, got 0',
    );
  });

  it('reads the log and Loki settings from options and env, and checks them', () => {
    const config = resolveConveyorConfig(
      { driverName: 'd', loki: { batchBytes: 2048 } },
      {
        LOKI_URL: 'http://loki:3100/',
        LOKI_TENANT: 'team-a',
        LOKI_LEGACY_LABELS: 'true',
        CONVEYOR_LOG_TIMESTAMP: 'unix',
        CONVEYOR_LOG_LEGACY_SUBJECT: '1',
        CONVEYOR_LOG_MAX_LINE_BYTES: '1000',
      },
    );
    expect(config.loki).toEqual({
      url: 'http://loki:3100',
      tenant: 'team-a',
      legacyLabels: true,
      batchBytes: 2048,
      batchIntervalMs: 1000,
      deferMaxMs: 5000,
      timeoutMs: 10_000,
    });
    expect(config.logs).toMatchObject({ timestampFormat: 'unix', legacySubject: true, maxLineBytes: 1000 });
    expect(resolveConveyorConfig({ driverName: 'd' }, {}).loki).toBeUndefined();
    expect(() =>
      resolveConveyorConfig(
        { driverName: 'd', logs: { maxLineBytes: 10, oversize: 'drop' as never } },
        { LOKI_URL: 'loki:3100', CONVEYOR_LOG_TIMESTAMP: 'iso' },
      ),
    ).toThrow(
      new ConveyorConfigError([
        'option "logs.timestampFormat" from env CONVEYOR_LOG_TIMESTAMP="iso": must be one of "rfc3339", "unix"',
        'option "logs.maxLineBytes" (env CONVEYOR_LOG_MAX_LINE_BYTES): must be a whole number >= 64, got 10',
        'option "logs.oversize": must be one of "split", "truncate", got "drop"',
        'option "loki.url" from env LOKI_URL="loki:3100": must be an http(s) URL such as http://loki:3100',
      ]),
    );
  });

  it.each(['a.b', 'a b', '*', 'x>y', 'a/b', ''])(
    'refuses driver name %p (it becomes a subject token)',
    (driverName) => {
      expect(() => resolveConveyorConfig({ driverName }, {})).toThrow(/"driverName"/);
    },
  );

  it('checks TLS files exist and that cert and key come together', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tls-'));
    const cert = join(dir, 'c.pem');
    writeFileSync(cert, 'x');
    expect(() => resolveConveyorConfig({ driverName: 'd', tls: { cert } }, {})).toThrow(
      /cert and key must be given together/,
    );
    expect(() =>
      resolveConveyorConfig(
        { driverName: 'd' },
        { CONVEYOR_TLS_CERT: cert, CONVEYOR_TLS_KEY: join(dir, 'missing.pem') },
      ),
    ).toThrow(/option "tls.key": file ".*missing.pem" does not exist/);
    expect(resolveConveyorConfig({ driverName: 'd', tls: { cert, key: cert, ca: cert } }, {}).tls).toEqual({
      cert,
      key: cert,
      ca: cert,
    });
  });
});

/** The problems a configuration is refused for (none when it resolves). */
function problemsOf(options: Record<string, unknown>, env: Record<string, string> = {}): string[] {
  try {
    resolveConveyorConfig({ driverName: 'd', ...options } as ConveyorModuleOptions, env);
    return [];
  } catch (err) {
    if (err instanceof ConveyorConfigError) return err.problems;
    throw err;
  }
}

describe('option values: one schema for every section', () => {
  it('reads booleans given as strings, as a config service returns them', () => {
    const config = resolveConveyorConfig(
      {
        driverName: 'd',
        staleEventGuard: 'true' as never,
        retryApiErrors: '0' as never,
        logs: { conveyor: 'false' as never, legacySubject: 'TRUE' as never },
      },
      { CONVEYOR_LOG_STREAMS_TO_PROCESS_LOG: ' 1 ' },
    );
    expect(config).toMatchObject({ staleEventGuard: true, retryApiErrors: false });
    expect(config.logs).toMatchObject({ conveyor: false, legacySubject: true, streamsToProcessLog: true });
  });

  it.each([
    [
      {},
      { CONVEYOR_STALE_EVENT_GUARD: 'yes' },
      'option "staleEventGuard" from env CONVEYOR_STALE_EVENT_GUARD="yes"',
    ],
    [{ logs: { conveyor: 'yes' } }, {}, 'option "logs.conveyor"'],
    [{}, { CONVEYOR_API_AUTH: 'on' }, 'option "apiAuth.enabled" from env CONVEYOR_API_AUTH="on"'],
    [{}, { LOKI_URL: 'http://loki:3100', LOKI_LEGACY_LABELS: 'no' }, 'option "loki.legacyLabels"'],
  ])('refuses a boolean that is not true/false/1/0 (%j %j), naming the option', (options, env, source) => {
    expect(problemsOf(options, env)).toEqual([
      expect.stringMatching(new RegExp(`^${escape(source)}.*: must be true or false`)),
    ]);
  });

  it.each([
    [{ concurency: 4 }, 'option "concurency" is not a Conveyor option: did you mean "concurrency"?'],
    [{ AckMode: 'onReceive' }, 'option "AckMode" is not a Conveyor option: did you mean "ackMode"?'],
    [
      { logs: { conveyer: false } },
      'option "logs.conveyer" is not a Conveyor option: did you mean "logs.conveyor"?',
    ],
    [
      { client: { timeout: 5 } },
      'option "client.timeout" is not a Conveyor option: did you mean "client.timeoutMs"?',
    ],
    [
      { loki: { url: 'http://loki:3100', tenent: 'a' } },
      'option "loki.tenent" is not a Conveyor option: did you mean "loki.tenant"?',
    ],
    [
      { natsAuth: { pasword: 'pw' } },
      'option "natsAuth.pasword" is not a Conveyor option: did you mean "natsAuth.password"?',
    ],
    [
      { backoff: { initalMs: 5 } },
      'option "backoff.initalMs" is not a Conveyor option: did you mean "backoff.initialMs"?',
    ],
  ])('refuses the misspelled option in %j and suggests the right one', (options, problem) => {
    expect(problemsOf(options)).toEqual([problem]);
  });

  it('refuses an unknown option that resembles none, listing the known ones of a small section', () => {
    expect(problemsOf({ sparkles: true })).toEqual(['option "sparkles" is not a Conveyor option']);
    expect(problemsOf({ tls: { pem: 'x' } })).toEqual([
      'option "tls.pem" is not a Conveyor option (tls takes cert, key, ca)',
    ]);
  });

  const TOO_LONG = 2 ** 31; // Node fires a timer longer than 2^31-1 ms at once
  it.each([
    ['reconcileTimeoutMs', { reconcileTimeoutMs: 30 * 24 * 3_600_000 }, {}],
    ['shutdownTimeoutMs', {}, { CONVEYOR_SHUTDOWN_TIMEOUT_MS: '9999999999' }],
    ['cleanupTimeoutMs', { cleanupTimeoutMs: TOO_LONG }, {}],
    ['deadLetterTimeoutMs', {}, { CONVEYOR_DEAD_LETTER_TIMEOUT_MS: String(TOO_LONG) }],
    ['ackWaitMs', { ackWaitMs: TOO_LONG }, {}],
    ['cancelTtlMs', { cancelTtlMs: TOO_LONG }, {}],
    ['leaseTtlMs', { leaseTtlMs: TOO_LONG }, {}],
    ['unroutedDeadLetterMs', { unroutedDeadLetterMs: TOO_LONG }, {}],
    ['backoff.maxMs', { backoff: { maxMs: TOO_LONG } }, {}],
    ['client.timeoutMs', {}, { CONVEYOR_API_TIMEOUT_MS: String(TOO_LONG) }],
    ['client.retryBackoff.maxMs', { client: { retryBackoff: { maxMs: TOO_LONG } } }, {}],
    ['logs.flushTimeoutMs', { logs: { flushTimeoutMs: TOO_LONG } }, {}],
    ['loki.batchIntervalMs', { loki: { url: 'http://loki:3100', batchIntervalMs: TOO_LONG } }, {}],
    ['loki.deferMaxMs', { loki: { deferMaxMs: TOO_LONG } }, { LOKI_URL: 'http://loki:3100' }],
    ['loki.timeoutMs', { loki: { url: 'http://loki:3100', timeoutMs: TOO_LONG } }, {}],
  ])('refuses %s above 2^31-1 ms, saying so', (name, options, env) => {
    expect(problemsOf(options, env)).toEqual([
      expect.stringMatching(
        new RegExp(`^option "${escape(name)}".*: must be a whole number >= \\d+ and <= 2147483647 \\(`),
      ),
    ]);
    expect(problemsOf(options, env)[0]).toMatch(/Node/);
  });

  it('accepts 2^31-1 ms, the longest timer Node keeps', () => {
    expect(
      resolveConveyorConfig({ driverName: 'd', reconcileTimeoutMs: 2 ** 31 - 1 }, {}).reconcileTimeoutMs,
    ).toBe(2 ** 31 - 1);
  });

  it.each([
    [{}, { CONVEYOR_API_URL: 'htps://admin:s3cretPW@api' }, 'option "apiUrl"'],
    [{ apiUrl: 'htps://admin:s3cretPW@api' }, {}, 'option "apiUrl"'],
    [{}, { CONVEYOR_API_URL: 'admin:s3cretPW@api' }, 'option "apiUrl"'],
    [{}, { LOKI_URL: 'htps://admin:s3cretPW@loki:3100' }, 'option "loki.url"'],
    [{}, { CONVEYOR_NATS_URL: 'http://admin:s3cretPW@nats:4222' }, 'option "servers"'],
  ])('never prints the password of a mistyped URL (%j %j)', (options, env, source) => {
    const problems = problemsOf(options, env);
    expect(problems).toEqual([expect.stringContaining(source)]);
    expect(problems[0]).not.toContain('s3cretPW');
  });

  it('shows a value once: a NATS URL it refuses is quoted in the reason', () => {
    expect(problemsOf({}, { CONVEYOR_NATS_URL: 'http://admin:s3cretPW@nats:4222' })).toEqual([
      'option "servers" from env CONVEYOR_NATS_URL: "http://admin:***@nats:4222" is not a NATS URL (nats://host:port or tls://host:port)',
    ]);
  });

  it('echoes the value it refuses, given in code or env', () => {
    expect(problemsOf({ concurrency: 1.5, ackMode: 'sometimes' })).toEqual([
      'option "concurrency" (env CONVEYOR_CONCURRENCY): must be a whole number >= 1, got 1.5',
      'option "ackMode" (env CONVEYOR_ACK_MODE): must be one of "afterResult", "onReceive", got "sometimes"',
    ]);
    expect(problemsOf({}, { CONVEYOR_CONCURRENCY: ' many ' })).toEqual([
      'option "concurrency" from env CONVEYOR_CONCURRENCY="many": must be a whole number >= 1',
    ]);
  });

  it('never echoes a secret option, even when it is invalid', () => {
    const problems = problemsOf({ natsAuth: { user: 'u', password: 12345678 } });
    expect(problems).toEqual([expect.stringMatching(/^option "natsAuth.password" .*must be a string/)]);
    expect(problems[0]).not.toContain('12345678');
  });

  it('trims every env value the same way', () => {
    const config = resolveConveyorConfig(
      { driverName: 'd' },
      {
        CONVEYOR_CONCURRENCY: ' 4 ',
        CONVEYOR_NATS_TOKEN: ' t0ken\n',
        LOKI_URL: ' http://loki:3100 ',
        LOKI_TENANT: ' team-a ',
        CONVEYOR_API_URL: ' http://api:1 ',
      },
    );
    expect(config).toMatchObject({ concurrency: 4, apiUrl: 'http://api:1' });
    expect(config.natsAuth).toEqual({ mode: 'token', token: 't0ken' });
    expect(config.loki).toMatchObject({ url: 'http://loki:3100', tenant: 'team-a' });
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
