import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { ConveyorConfigError, resolveConveyorConfig } from './conveyor.options';

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
        'option "maxAttempts" (env CONVEYOR_MAX_ATTEMPTS): must be a whole number >= 1',
        'option "deadLetterSubject" (env CONVEYOR_DEAD_LETTER_SUBJECT): must be a NATS subject of dot-separated tokens without wildcards or whitespace',
        'option "backoff": maxMs (100) is below initialMs (500)',
        'option "onDeadLetter": must be a function (record) => void | Promise<void>',
      ]),
    );
    expect(() => resolveConveyorConfig({ driverName: 'd' }, { CONVEYOR_BACKOFF_INITIAL_MS: 'soon' })).toThrow(
      'option "backoff.initialMs" from env CONVEYOR_BACKOFF_INITIAL_MS="soon": must be a whole number >= 0',
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
        CONVEYOR_STALE_EVENT_GUARD: 'yes',
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
      'option "concurrency" (env CONVEYOR_CONCURRENCY): must be a whole number >= 1',
      'option "ackMode" from env CONVEYOR_ACK_MODE="sometimes": must be one of "afterResult", "onReceive"',
      'option "ackWaitMs" from env CONVEYOR_ACK_WAIT_MS="10": must be a whole number >= 1000',
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
      'option "concurrency" (env CONVEYOR_CONCURRENCY): must be a whole number >= 1',
    ]);
    expect(inspect(error)).toBe(
      'ConveyorConfigError: Invalid Conveyor configuration:\n' +
        '  - option "concurrency" (env CONVEYOR_CONCURRENCY): must be a whole number >= 1',
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
        'option "logs.timestampFormat" (env CONVEYOR_LOG_TIMESTAMP): must be "rfc3339" or "unix"',
        'option "logs.oversize": must be "split" or "truncate"',
        'option "logs.maxLineBytes": must be a whole number >= 64',
        'option "loki.url" (env LOKI_URL): "loki:3100" must be an http(s) URL such as http://loki:3100',
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
