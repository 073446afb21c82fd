/**
 * A consumer session whose stop signal fires as it starts pulling (a shutdown, or the connection
 * closed for good, landing while the consumer binds or re-binds) ends: it waited for an `abort`
 * event that had already fired, so `app.close()` hung for good behind it (a clean CI run's 120 s
 * teardown hang after a redial).
 */
import { Logger } from '@nestjs/common';
import { ConveyorTestEnv } from '@conveyor-ci/testing';
import { abortable, resolveConveyorConfig } from '@conveyor-ci/nestjs/internal';
import {
  ConsumerSession,
  type ConsumerSessionDeps,
} from '../../libs/conveyor/src/transport/consumer-session';
import { RunObservers } from '../../libs/conveyor/src/run/run-events';
import { RunSlots } from '../../libs/conveyor/src/run/run-slots';

let env: ConveyorTestEnv;

beforeAll(async () => {
  env = await ConveyorTestEnv.start();
});
afterAll(() => env?.stop());

it('ends when its signal aborted before it waits for trouble', async () => {
  const stop = new AbortController();
  const statuses: boolean[] = [];
  const session = new ConsumerSession({
    nc: env.nc,
    jsm: env.jsm,
    config: resolveConveyorConfig({ driverName: 'session-abort', servers: env.url }, {}),
    resources: ['pipeline'],
    // No message arrives (nothing is published): the pull budget only reads the runs' counters.
    runs: {
      prefetch: 0,
      queued: 0,
      size: 0,
      consumerChanged: () => undefined,
    } as unknown as ConsumerSessionDeps['runs'],
    slots: new RunSlots(1),
    logger: new Logger('session-abort'),
    observers: new RunObservers(),
    // The stop lands between the bind and the wait, the narrowest place it can.
    onStatus: (status) => {
      statuses.push(status.pulling);
      if (status.pulling) stop.abort();
    },
  });
  // 'timed-out': still running after 5 s.
  expect((await abortable(session.run(stop.signal), undefined, 5_000)).ended).toBe('done');
  expect(statuses).toEqual([false, true]);
});
