import { DriverRegistry, type LiveDriverInstance } from '@conveyor-ci/nestjs';
import { ConveyorTestEnv, DriverProcess, sleep } from '@conveyor-ci/testing';
import { startReferenceDriver, whenConsuming } from '../support/reference-driver';

/**
 * The driver registry (issue 29) with the built reference driver as real child processes: an entry
 * appears within a second of consuming, goes on SIGTERM, and ages out after SIGKILL within the
 * bucket's TTL. The bucket is made here with a 3 s TTL, so the replicas heartbeat every second and
 * the crash case takes seconds, not the default 15.
 */
const TTL_MS = 3_000;
const DRIVER = 'registry-probe';

let env: ConveyorTestEnv;
let registry: DriverRegistry;
const drivers: DriverProcess[] = [];

beforeAll(async () => {
  env = await ConveyorTestEnv.start();
  await env.nc.jetstream().views.kv('conveyor-drivers', { ttl: TTL_MS, history: 1 });
  registry = new DriverRegistry(env.nc);
});
// Each test starts from an empty registry: a replica left listed (a SIGKILLed one stays alive for
// up to the TTL) would show up in the next test's exact lists. CI once failed on exactly that.
afterEach(async () => {
  for (const d of drivers.splice(0)) await d.stop('SIGTERM', 10_000);
  await within(TTL_MS + 1_000, async () => expect(await registry.instancesOf(DRIVER)).toEqual([]));
});
afterAll(() => env.stop());

async function replica(): Promise<DriverProcess> {
  const driver = await startReferenceDriver(env, DRIVER, { CONVEYOR_CONCURRENCY: '3' });
  drivers.push(driver);
  return driver;
}

/** Retries `check` (an expectation) every 50 ms until it passes; its last failure after `timeoutMs`. */
async function within<T>(timeoutMs: number, check: () => T | Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(50);
    }
  }
}

const pids = (list: LiveDriverInstance[]) => list.map((instance) => instance.pid);

describe('driver registry', () => {
  it('lists a replica within a second of consuming, with what it is and what it handles', async () => {
    const driver = await replica();
    await whenConsuming(driver);
    const consumingAt = Date.now();
    const [entry] = await within(1_000, async () => {
      const listed = await registry.instancesOf(DRIVER);
      expect(pids(listed)).toEqual([driver.pid]);
      return listed;
    });
    expect(Date.now() - consumingAt).toBeLessThan(1_000);
    expect(entry).toMatchObject({
      driver: DRIVER,
      pid: driver.pid,
      concurrency: 3,
      in_flight: 0,
      state: 'consuming',
      resources: [{ resource: 'pipeline', events: ['create', 'process'] }],
    });
    expect(entry.instance_id).toMatch(/^[0-9a-f]{12}$/);
    expect(entry.host.length).toBeGreaterThan(0);
    expect(entry.library_version).toMatch(/^\d+\.\d+\.\d+/);
    expect(Date.parse(entry.started_at)).toBeLessThanOrEqual(Date.parse(entry.heartbeat_at));
    expect(Date.parse(entry.expires_at) - Date.parse(entry.seen_at)).toBe(TTL_MS);
  });

  it('removes the entry on SIGTERM, and ages a SIGKILLed one out within the TTL, as a watch sees it', async () => {
    const [graceful, crashed] = [await replica(), await replica()];
    await Promise.all([whenConsuming(graceful), whenConsuming(crashed)]);
    const stopWatching = new AbortController();
    const seen: number[][] = [];
    const watching = (async () => {
      for await (const list of registry.watch(stopWatching.signal))
        seen.push(pids(list.filter((i) => i.driver === DRIVER)).sort());
    })();
    try {
      const both = [graceful.pid!, crashed.pid!].sort();
      await within(2_000, () => expect(seen.at(-1)).toEqual(both));

      expect(await graceful.stop('SIGTERM')).toMatchObject({ code: 0 });
      // Deleted by the shutdown itself: listed no more the moment the process is gone.
      expect(pids(await registry.instancesOf(DRIVER))).toEqual([crashed.pid]);
      await within(1_000, () => expect(seen.at(-1)).toEqual([crashed.pid]));

      const lastWrite = Date.parse((await registry.instancesOf(DRIVER))[0].seen_at);
      await crashed.stop('SIGKILL');
      await within(TTL_MS + 1_000, async () => expect(await registry.instancesOf(DRIVER)).toEqual([]));
      expect(Date.now() - lastWrite).toBeLessThan(TTL_MS + 1_000);
      // The watch ages it out as well: an expiry sends nothing to a watcher.
      await within(TTL_MS, () => expect(seen.at(-1)).toEqual([]));
    } finally {
      stopWatching.abort();
      await watching;
    }
  });
});
