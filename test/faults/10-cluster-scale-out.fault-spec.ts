import { account, expectNothingLost } from './support/accounting';
import { stepEvent } from './support/event-feeder';
import { TimedDriver, startDriver } from './support/fault-drivers';
import { FaultEnv } from './support/fault-env';
import { streamEvents } from './support/fault-sizes';

const EVENTS = streamEvents();
const DRIVER = 'faults-scale';
const REPLICAS = 3;
const CONCURRENCY = 8;
const HANDLER_MS = 50;

describe('case 10: scale-out on the cluster, 3 replicas sharing one durable consumer', () => {
  let env: FaultEnv;
  afterAll(() => env?.stop());

  it('reconciles each of 10,000 events once across the replicas, and measures throughput against the ideal', async () => {
    env = await FaultEnv.cluster();
    const replicas: TimedDriver[] = [];
    for (let i = 0; i < REPLICAS; i++)
      replicas.push(
        await startDriver('fault', env.servers, DRIVER, { CONVEYOR_CONCURRENCY: String(CONCURRENCY) }),
      );
    await env.waitForConsumer(DRIVER);
    const startedAt = Date.now();
    await env.feeder.feed(EVENTS, () => stepEvent(DRIVER, 'fault', { act: 'sleep', ms: HANDLER_MS }), {
      window: 64,
    });
    const outcome = await account(env, DRIVER, '10 cluster scale-out: 3 replicas', startedAt, {
      timeoutMs: 300_000,
    });
    const seconds = (env.wire.lastAt - startedAt) / 1000;
    const rate = EVENTS / seconds;
    const ideal = (REPLICAS * CONCURRENCY * 1000) / HANDLER_MS;
    const shares = replicas.map((r) => r.process.lines.filter((l) => l.json?.msg === 'fault sleep').length);
    outcome.row.notes =
      `fault driver, ${REPLICAS} replicas x concurrency ${CONCURRENCY}, ${HANDLER_MS} ms handler: ` +
      `${rate.toFixed(0)} events/s, ${(rate / ideal).toFixed(2)} of the ideal ${ideal}/s ` +
      `(3 nats-servers and 3 drivers on the same 2 cores); runs per replica ${shares.join(' / ')}`;
    expectNothingLost(outcome);
    // Every run counted once in some replica's log: a rerun would show as a redelivery.
    expect(shares.reduce((a, b) => a + b, 0)).toBe(EVENTS + outcome.row.redelivered);
    for (const share of shares) expect(share).toBeGreaterThan(EVENTS / (REPLICAS * 4));
    for (const r of replicas) expect(await r.process.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });
});
