import { randomUUID } from 'node:crypto';
import {
  ConveyorTestEnv,
  DriverProcess,
  eventually,
  makeResource,
  publishDriverMessage,
} from '@conveyor-ci/testing';
import { settledDeliveries } from '../support/consumer-deliveries';
import { startReferenceDriver, whenConsuming } from '../support/reference-driver';

let env: ConveyorTestEnv;
const drivers: DriverProcess[] = [];

beforeAll(async () => {
  env = await ConveyorTestEnv.start();
});
afterEach(async () => {
  for (const d of drivers.splice(0)) await d.stop('SIGKILL');
});
afterAll(() => env.stop());

async function replica(name: string, extraEnv: Record<string, string> = {}): Promise<DriverProcess> {
  const driver = await startReferenceDriver(env, name, extraEnv);
  drivers.push(driver);
  await whenConsuming(driver);
  return driver;
}

/** Publishes a one-step pipeline step for `driver`; returns its run id. */
async function submit(driver: string, run: string): Promise<string> {
  const sent = await publishDriverMessage(env.js, {
    driver,
    resource: makeResource({
      name: `p-${randomUUID().slice(0, 8)}`,
      resource: 'pipeline',
      pipeline: 'lifecycle',
      spec: { steps: [{ name: 'work', run }] },
    }),
  });
  return sent.message.run_id;
}

const started = (driver: DriverProcess) => driver.waitForLine((l) => l.json?.msg === 'step work: starting');

/** Nothing pending or unacknowledged, then the deliveries the consumer made (redeliveries included). */
function deliveriesOnceIdle(name: string): Promise<number> {
  return settledDeliveries(env.jsm, name, 30_000);
}

/** Results per run id: every run present, and how many results each got. */
function resultCounts(runIds: string[]): number[] {
  return runIds.map((id) => env.results.forRun(id).length);
}

describe('reference driver lifecycle (built, as child processes, real signals)', () => {
  it('finishes a 3 s run on SIGTERM, publishes and acks its result, and exits 0', async () => {
    const name = `lc-drain-${process.pid}`;
    const driver = await replica(name);
    const runId = await submit(name, 'sleep 3');
    await started(driver);
    const signalledAt = Date.now();
    expect(await driver.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(Date.now() - signalledAt).toBeGreaterThanOrEqual(2000);
    expect(env.results.forRun(runId).map((r) => r.driverresult.success)).toEqual([true]);
    expect(await deliveriesOnceIdle(name)).toBe(1);
    await driver.waitForLine((l) => l.json?.msg === 'shutdown: every run settled');
  });

  it('naks a run still going at shutdownTimeoutMs, and a second replica completes it', async () => {
    const name = `lc-deadline-${process.pid}`;
    const first = await replica(name, { CONVEYOR_SHUTDOWN_TIMEOUT_MS: '1000' });
    const runId = await submit(name, 'sleep 4');
    await started(first);
    const second = await replica(name, { CONVEYOR_SHUTDOWN_TIMEOUT_MS: '1000' });
    const signalledAt = Date.now();
    expect(await first.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(Date.now() - signalledAt).toBeLessThan(4000);
    const result = await env.results.waitForRun(runId, 20_000);
    expect(result.driverresult).toMatchObject({ success: true, message: '1 step(s) passed' });
    // The second replica ran it as a redelivery; the first published nothing.
    await second.waitForLine(
      (l) => String(l.json?.msg).startsWith('running 1 step(s)') && l.json?.delivery === 2,
    );
    expect(env.results.forRun(runId)).toHaveLength(1);
    expect(await deliveriesOnceIdle(name)).toBe(2);
  });

  it('processes events published while every replica was down, after a restart', async () => {
    const name = `lc-down-${process.pid}`;
    const driver = await replica(name);
    expect(await driver.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    const runIds: string[] = [];
    for (let i = 0; i < 5; i++) runIds.push(await submit(name, `echo ${i}`));
    await replica(name);
    for (const id of runIds) await env.results.waitForRun(id, 20_000);
    expect(resultCounts(runIds)).toEqual([1, 1, 1, 1, 1]);
    expect(await deliveriesOnceIdle(name)).toBe(5);
  });

  it('completes every run when one of two replicas is SIGKILLed with runs in flight', async () => {
    const name = `lc-kill-${process.pid}`;
    const settings = { CONVEYOR_CONCURRENCY: '2', CONVEYOR_ACK_WAIT_MS: '2000' };
    const victim = await replica(name, settings);
    await replica(name, settings);
    const runIds: string[] = [];
    for (let i = 0; i < 8; i++) runIds.push(await submit(name, 'sleep 1'));
    await started(victim);
    await victim.stop('SIGKILL');
    await eventually(() => resultCounts(runIds).every((n) => n >= 1), 'every run', 40_000);
    for (const id of runIds) expect(env.results.forRun(id).every((r) => r.driverresult.success)).toBe(true);
    // A kill between the result's PubAck and the ack reruns a run: allowed, and counted here.
    const duplicates = resultCounts(runIds).filter((n) => n > 1).length;
    expect(duplicates).toBeLessThanOrEqual(2);
    // Each event once, plus a redelivery of each run the victim held unacked when killed: at most its
    // CONVEYOR_CONCURRENCY of 2, since a replica pulls only what its free slots can take.
    const deliveries = await deliveriesOnceIdle(name);
    expect(deliveries).toBeGreaterThanOrEqual(8);
    expect(deliveries).toBeLessThanOrEqual(10);
  });

  it('reconciles each of 1,000 events exactly once across two replicas', async () => {
    const name = `lc-scale-${process.pid}`;
    const settings = { CONVEYOR_CONCURRENCY: '8' };
    const pair = [await replica(name, settings), await replica(name, settings)];
    const runIds: string[] = [];
    for (let i = 0; i < 1000; i++) runIds.push(await submit(name, 'true'));
    await eventually(() => resultCounts(runIds).every((n) => n >= 1), '1,000 results', 120_000);
    expect(await deliveriesOnceIdle(name)).toBe(1000); // no redelivery at all
    expect(resultCounts(runIds).filter((n) => n !== 1)).toEqual([]);
    const runsOf = (d: DriverProcess) =>
      d.lines.filter((l) => String(l.json?.msg).startsWith('running 1 step(s)')).length;
    // Their stdout may trail the results a little.
    await eventually(() => runsOf(pair[0]) + runsOf(pair[1]) === 1000, 'every run logged');
    const runsBy = pair.map(runsOf);
    expect(Math.min(...runsBy)).toBeGreaterThan(100); // both replicas shared the work
  });
});
