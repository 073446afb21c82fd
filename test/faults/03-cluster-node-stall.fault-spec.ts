import { RESUME_LIMIT_MS } from './support/fault-sizes';
import { sleep } from '@conveyor-ci/testing';
import { account, expectNothingLost } from './support/accounting';
import { shellStep } from './support/event-feeder';
import { startDriver } from './support/fault-drivers';
import { FaultEnv } from './support/fault-env';

const EVENTS = 2000;
const DRIVER = 'faults-stall';
const STALL_MS = 10_000;

describe('case 3: 3-node cluster, the driver’s node SIGSTOPped for 10 s', () => {
  let env: FaultEnv;
  afterAll(() => env?.stop());

  it('nothing is lost, and work resumes within 2 s of SIGCONT (10 s is below the ping-based detection: 20 s x 3)', async () => {
    env = await FaultEnv.cluster();
    const cluster = env.cluster!;
    const driver = await startDriver('reference', env.servers, DRIVER, { CONVEYOR_CONCURRENCY: '8' });
    await env.waitForConsumer(DRIVER);
    const connectionName = `Conveyor Driver Manager - ${DRIVER}`;
    let stalled: { node: string; at: number; thawed?: number } | undefined;
    let stall: Promise<void> | undefined;
    const startedAt = Date.now();
    await env.feeder.feed(EVENTS, () => shellStep(DRIVER, 'true'), {
      perSecond: 400,
      onPublished: (n) => {
        if (n !== EVENTS / 2) return;
        stall = (async () => {
          const node = await cluster.nodeOfConnection(connectionName);
          if (!node) throw new Error('driver not connected');
          stalled = { node: node.name, at: Date.now() };
          node.server.freeze();
          await sleep(STALL_MS);
          node.server.thaw();
          stalled.thawed = Date.now();
        })();
      },
    });
    await stall;
    const outcome = await account(env, DRIVER, '3 cluster: driver’s node SIGSTOPped 10 s', startedAt, {
      timeoutMs: 180_000,
    });
    // Back when it reconnected elsewhere, or when its node continued.
    const back = driver.loggedAt('reconnected to NATS', stalled!.at);
    const resumedFrom = Math.min(back ?? Infinity, stalled!.thawed!);
    outcome.row.resumeMs = (env.wire.firstAfter(resumedFrom) ?? Infinity) - resumedFrom;
    outcome.row.notes =
      `${EVENTS} reference-driver runs (concurrency 8); ${stalled!.node} stopped for ${STALL_MS / 1000} s at 1/2; ` +
      (back === undefined
        ? 'the driver did not reconnect elsewhere during the stall'
        : `the driver reconnected elsewhere ${((back - stalled!.at) / 1000).toFixed(1)} s after the stop`);
    expectNothingLost(outcome);
    expect(outcome.row.resumeMs).toBeLessThanOrEqual(RESUME_LIMIT_MS);
    expect(await driver.process.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });
});
