import { MESSAGES_STREAM } from '@conveyor-ci/nestjs/internal';
import { eventually } from '@conveyor-ci/testing';
import { account, expectNothingLost } from './support/accounting';
import { shellStep } from './support/event-feeder';
import { TimedDriver, startDriver } from './support/fault-drivers';
import { FaultEnv } from './support/fault-env';

const readiness = async (driver: TimedDriver) =>
  (await fetch(`http://127.0.0.1:${driver.port}/health/ready`).catch(() => undefined))?.status;

describe('case 8: the consumer deleted at run time; the messages stream missing at startup', () => {
  let env: FaultEnv;
  afterEach(() => env?.stop());

  it('re-creates a consumer deleted under runs in flight and processes what comes next', async () => {
    const driverName = 'faults-consumer';
    env = await FaultEnv.single();
    const driver = await startDriver('reference', env.servers, driverName, { CONVEYOR_CONCURRENCY: '4' });
    await env.waitForConsumer(driverName);
    const startedAt = Date.now();
    // Exactly as many long runs as slots: all in flight, none waiting in the stream when the
    // consumer goes (interest retention drops what no consumer wants: server semantics, not a loss).
    for (let i = 0; i < 4; i++) await env.feeder.publish(shellStep(driverName, 'sleep 2'));
    await eventually(
      () => driver.process.lines.filter((l) => l.json?.msg === 'step work: starting').length === 4,
      'four runs in flight',
    );
    const deletedAt = Date.now();
    await env.jsm.consumers.delete(MESSAGES_STREAM, driverName);
    await env.waitForConsumer(driverName);
    const recreatedMs = Date.now() - deletedAt;
    for (let i = 0; i < 200; i++) await env.feeder.publish(shellStep(driverName, 'true'));
    const outcome = await account(env, driverName, '8a consumer deleted under 4 runs in flight', startedAt);
    outcome.row.notes = `reference driver, concurrency 4; consumer re-created ${(recreatedMs / 1000).toFixed(1)} s after the delete; 200 events after it`;
    expectNothingLost(outcome);
    expect(await driver.process.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });

  it('is not ready while messages is missing, becomes ready once it is created, and runs every event', async () => {
    const driverName = 'faults-nostream';
    env = await FaultEnv.single({ streams: false });
    const driver = await startDriver('reference', env.servers, driverName, {}, { waitConsuming: false });
    await eventually(async () => (await readiness(driver)) === 503, 'readiness 503 without the stream');
    await driver.process.waitForLine(
      (l) => /messages/.test(String(l.json?.msg)) && Number(l.json?.level) >= 40,
    );
    const createdAt = Date.now();
    await env.createStreams();
    await env.waitForConsumer(driverName);
    await eventually(async () => (await readiness(driver)) === 200, 'readiness 200 once the stream exists');
    const readyMs = Date.now() - createdAt;
    const startedAt = Date.now();
    for (let i = 0; i < 100; i++) await env.feeder.publish(shellStep(driverName, 'true'));
    const outcome = await account(env, driverName, '8b messages stream missing at startup', startedAt);
    outcome.row.notes = `ready ${(readyMs / 1000).toFixed(1)} s after the streams were created; 100 events then`;
    expectNothingLost(outcome);
    expect(await driver.process.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });
});
