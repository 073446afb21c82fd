import { account, expectNothingLost } from './support/accounting';
import { shellStep } from './support/event-feeder';
import { startDriver } from './support/fault-drivers';
import { FaultEnv } from './support/fault-env';

const DRIVER = 'faults-replicas';
const RUNS = 24;
const ACK_WAIT_MS = 2000;

describe('case 4: one of two replicas SIGKILLed with long runs in flight', () => {
  let env: FaultEnv;
  afterAll(() => env?.stop());

  it('the other replica completes them after AckWait: nothing lost, nothing stored twice', async () => {
    env = await FaultEnv.single();
    const settings = { CONVEYOR_CONCURRENCY: '3', CONVEYOR_ACK_WAIT_MS: String(ACK_WAIT_MS) };
    const victim = await startDriver('reference', env.servers, DRIVER, settings);
    const survivor = await startDriver('reference', env.servers, DRIVER, settings);
    await env.waitForConsumer(DRIVER);
    const startedAt = Date.now();
    for (let i = 0; i < RUNS; i++) await env.feeder.publish(shellStep(DRIVER, 'sleep 1.5'));
    await victim.process.waitForLine((l) => l.json?.msg === 'step work: starting');
    const killedAt = Date.now();
    await victim.process.stop('SIGKILL');
    const outcome = await account(env, DRIVER, '4 one of two replicas SIGKILLed mid-run', startedAt);
    const rerunBySurvivor = survivor.process.lines.filter(
      (l) => String(l.json?.msg).startsWith('running 1 step(s)') && Number(l.json?.delivery) > 1,
    ).length;
    outcome.row.notes =
      `${RUNS} runs of 1.5 s on two reference-driver replicas (concurrency 3, AckWait 2 s); the victim was killed ` +
      `${((killedAt - startedAt) / 1000).toFixed(1)} s in; the survivor reran ${rerunBySurvivor} of its runs`;
    expectNothingLost(outcome);
    expect(rerunBySurvivor).toBeGreaterThanOrEqual(1);
    // Only what the victim held can come back: at most its slots plus its small prefetch.
    expect(outcome.row.redelivered).toBeLessThanOrEqual(2 * 3 + 2);
    expect(await survivor.process.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });
});
