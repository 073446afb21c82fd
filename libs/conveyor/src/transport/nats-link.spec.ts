import { AttemptLogSchedule } from './nats-link';
import { describeNatsFailure } from './nats-errors';
import { transportReadiness } from './conveyor-transport.types';

describe('AttemptLogSchedule', () => {
  it('logs every failure for the first minute, then one a minute with the count left out', () => {
    let now = 0;
    const schedule = new AttemptLogSchedule(() => now);
    const logged: number[] = [];
    for (now = 0; now <= 180_000; now += 5000) {
      const { log, skipped } = schedule.next();
      if (log) logged.push(now / 1000, skipped);
    }
    // 0..55 s: all 12 attempts; then one a minute after the last logged one, 11 left out each time.
    expect(logged.filter((_, i) => i % 2 === 0)).toEqual([
      0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 115, 175,
    ]);
    expect(logged.slice(-4)).toEqual([115, 11, 175, 11]);
  });

  it('starts over after a success', () => {
    let now = 0;
    const schedule = new AttemptLogSchedule(() => now);
    schedule.next();
    now = 90_000;
    schedule.next();
    now = 95_000;
    expect(schedule.next().log).toBe(false);
    schedule.reset();
    expect(schedule.next().log).toBe(true);
  });
});

describe('describeNatsFailure', () => {
  it('names the env vars of the configured mode on an authorization violation', () => {
    const err = Object.assign(new Error('Authorization Violation'), { code: 'AUTHORIZATION_VIOLATION' });
    expect(describeNatsFailure(err, { natsAuth: { mode: 'user', user: 'u', password: 'p' } })).toBe(
      'authorization violation: check CONVEYOR_NATS_USER / CONVEYOR_NATS_PASSWORD',
    );
    expect(describeNatsFailure('AUTHORIZATION_VIOLATION', {})).toMatch(
      /the server requires credentials: set/,
    );
  });

  it('names a missing client certificate and an untrusted server', () => {
    const missing = Object.assign(new Error('socket'), {
      chainedError: { code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', message: 'alert' },
    });
    expect(describeNatsFailure(missing, {})).toBe(
      'the server requires a client certificate: set CONVEYOR_TLS_CERT and CONVEYOR_TLS_KEY',
    );
    const untrusted = Object.assign(new Error('self-signed certificate in certificate chain'), {
      code: 'SELF_SIGNED_CERT_IN_CHAIN',
    });
    expect(describeNatsFailure(untrusted, {})).toMatch(/not trusted: set CONVEYOR_TLS_CA/);
  });
});

describe('transportReadiness', () => {
  const base = {
    stopping: false,
    state: 'consuming' as const,
    connection: true,
    nats: { connected: true, server: 'nats://h:4222' },
    session: { pulling: true },
  };

  it('names the server and the last connection error while connecting or reconnecting', () => {
    const refused = {
      connected: false,
      server: 'nats://h:4222',
      lastError: 'authorization violation: check X',
    };
    expect(transportReadiness({ ...base, state: 'connecting', connection: false, nats: refused })).toEqual({
      ready: false,
      reason: 'connecting to NATS nats://h:4222: authorization violation: check X',
    });
    expect(transportReadiness({ ...base, nats: refused }).reason).toBe(
      'disconnected from NATS, reconnecting to NATS nats://h:4222: authorization violation: check X',
    );
  });

  it('is ready only when connected and pulling, and never while shutting down', () => {
    expect(transportReadiness(base)).toEqual({ ready: true });
    expect(
      transportReadiness({ ...base, session: { pulling: false, reason: 'binding the consumer' } }),
    ).toEqual({
      ready: false,
      reason: 'binding the consumer',
    });
    expect(transportReadiness({ ...base, stopping: true }).reason).toBe('shutting down');
  });
});
