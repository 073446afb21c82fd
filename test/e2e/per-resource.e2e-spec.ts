import { randomUUID } from 'node:crypto';
import { ConveyorTestEnv, DriverProcess, makeResource, publishDriverMessage } from '@conveyor-ci/testing';
import { startReferenceDriver, whenConsuming } from '../support/reference-driver';

/**
 * `perResource: 'serialize'` with real processes: a replica SIGKILLed while it holds a resource's
 * lease stops renewing it, the lease expires after `leaseTtlMs`, and the resource's next event runs
 * on the other replica; the killed run is redelivered after AckWait and runs too.
 */
let env: ConveyorTestEnv;
const drivers: DriverProcess[] = [];

beforeAll(async () => {
  env = await ConveyorTestEnv.start();
});
afterAll(async () => {
  for (const d of drivers.splice(0)) await d.stop('SIGKILL');
  await env.stop();
});

const replicaEnv = {
  SHELL_RUNNER_PER_RESOURCE: 'serialize',
  CONVEYOR_LEASE_TTL_MS: '3000',
  CONVEYOR_ACK_WAIT_MS: '5000',
};

async function submit(driver: string, resource: string, run: string): Promise<string> {
  const sent = await publishDriverMessage(env.js, {
    driver,
    resource: makeResource({
      name: resource,
      resource: 'pipeline',
      pipeline: 'p',
      spec: { steps: [{ name: 'work', run }] },
    }),
  });
  return sent.message.run_id;
}

it("a replica SIGKILLed holding a lease: the lease expires and the resource's next event runs elsewhere", async () => {
  const name = `per-resource-${process.pid}`;
  for (let i = 0; i < 2; i++) {
    const driver = await startReferenceDriver(env, name, replicaEnv);
    drivers.push(driver);
    await whenConsuming(driver);
  }
  const resource = `repo-${randomUUID().slice(0, 8)}`;
  const first = await submit(name, resource, 'sleep 2');
  const holder = await Promise.race(
    drivers.map((d) =>
      d
        .waitForLine((l) => l.json?.msg === 'step work: starting' && l.json?.run_id === first, 20_000)
        .then(() => d),
    ),
  );
  const survivor = drivers.find((d) => d !== holder)!;
  await holder.stop('SIGKILL');
  const killedAt = Date.now();
  const second = await submit(name, resource, 'echo second');
  const result = await env.results.waitForRun(second, 30_000);
  expect(result.driverresult).toMatchObject({ success: true, message: '1 step(s) passed' });
  // It waited for the dead holder's lease to expire (3 s TTL), not for ever.
  expect(Date.now() - killedAt).toBeLessThan(20_000);
  // The killed run comes back after AckWait and completes on the survivor.
  const rerun = await env.results.waitForRun(first, 40_000);
  expect(rerun.driverresult).toMatchObject({ success: true });
  expect(survivor.lines.some((l) => l.json?.run_id === first)).toBe(true);
}, 90_000);
