/**
 * `app.close()` while the nats-server is stalled (SIGSTOP: its socket stays open, nothing answers):
 * every shutdown step that waits on the server (the registry entry's delete, the run-cancel
 * watcher, the connection's drain) has its own deadline, so the close ends and the connection is
 * closed for good instead of waiting for a server that may never answer. A driver stopped by an
 * autoscaler while its node hangs must still exit.
 */
import { Controller } from '@nestjs/common';
import { Reconcile, type DriverResult } from '@conveyor-ci/nestjs';
import { abortable } from '@conveyor-ci/nestjs/internal';
import { ConveyorTestEnv } from '@conveyor-ci/testing';
import { startDriverApp, uniqueDriverName } from '../support/driver-app';

@Controller()
class NoopDriver {
  @Reconcile({ resource: 'pipeline' })
  reconcile(): DriverResult {
    return { success: true };
  }
}

/** The sum of the shutdown's own deadlines (drain 5 s, registry write 5 s, cancel watcher 5 s) and slack. */
const CLOSE_BOUND_MS = 40_000;

let env: ConveyorTestEnv;
beforeAll(async () => {
  env = await ConveyorTestEnv.start();
});
afterAll(async () => {
  env.server.thaw();
  await env.stop();
});

it('app.close() ends with the server stalled, and the connection is closed', async () => {
  const { app, strategy } = await startDriverApp({
    options: { driverName: uniqueDriverName('stalled'), servers: env.url },
    controllers: [NoopDriver],
  });
  let closing: Promise<void> | undefined;
  try {
    await strategy.whenConsuming();
    const nc = strategy.unwrap();
    env.server.freeze();
    closing = app.close();
    // 'timed-out': still closing after CLOSE_BOUND_MS.
    expect((await abortable(closing, undefined, CLOSE_BOUND_MS)).ended).toBe('done');
    expect(nc.isClosed()).toBe(true);
    expect(strategy.state).toBe('closed');
  } finally {
    env.server.thaw();
    await (closing ?? app.close());
  }
}, 60_000);
