import { eventually } from '@conveyor-ci/testing';
import { account, expectNothingLost } from './support/accounting';
import { shellStep } from './support/event-feeder';
import { startDriver } from './support/fault-drivers';
import { FaultEnv } from './support/fault-env';

const DRIVER = 'faults-sigterm';

describe('case 5: SIGTERM with runs in flight, three signals in a row', () => {
  let env: FaultEnv;
  afterAll(() => env?.stop());

  it('naks the runs still going at the deadline, the other replica reruns each once, exits 0 despite 3 signals', async () => {
    env = await FaultEnv.single();
    const settings = { CONVEYOR_CONCURRENCY: '4', CONVEYOR_SHUTDOWN_TIMEOUT_MS: '3000' };
    const first = await startDriver('reference', env.servers, DRIVER, settings);
    await env.waitForConsumer(DRIVER);
    const startedAt = Date.now();
    // Long runs the first replica holds when signalled: aborted at the deadline, nak'd, rerun elsewhere.
    for (let i = 0; i < 4; i++) await env.feeder.publish(shellStep(DRIVER, 'sleep 6'));
    await eventually(
      () => first.process.lines.filter((l) => l.json?.msg === 'step work: starting').length === 4,
      'the first replica running 4 long runs',
    );
    const second = await startDriver('reference', env.servers, DRIVER, settings);
    for (let i = 0; i < 12; i++) await env.feeder.publish(shellStep(DRIVER, 'sleep 1'));
    const signalledAt = Date.now();
    for (let i = 0; i < 3; i++) {
      process.kill(first.process.pid!, 'SIGTERM');
      await new Promise((r) => setTimeout(r, 50));
    }
    const exit = await first.process.exited;
    const shutdownMs = Date.now() - signalledAt;
    const outcome = await account(env, DRIVER, '5 SIGTERM x3 with runs in flight', startedAt);
    outcome.row.notes =
      `4 runs of 6 s in flight on a replica (concurrency 4, shutdownTimeoutMs 3000) sent SIGTERM three times, 12 of 1 s queued, ` +
      `a second replica running; the first exited ${JSON.stringify(exit)} ${(shutdownMs / 1000).toFixed(1)} s after the first signal`;
    expectNothingLost(outcome);
    expect(exit).toEqual({ code: 0, signal: null });
    // The four long runs came back once each, to the second replica; nothing else did.
    expect(outcome.row.redelivered).toBe(4);
    expect(shutdownMs).toBeLessThan(3000 + 3000);
    expect(await second.process.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });
});
