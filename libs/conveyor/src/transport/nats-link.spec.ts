import { AttemptLogSchedule } from './nats-link';
import { describeNatsFailure } from './nats-errors';

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
