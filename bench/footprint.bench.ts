/**
 * The footprint section: what a driver costs to start, to keep idle and to answer one event, the
 * reference driver and a minimal framework driver against the bare nats.js loop as the floor.
 */
import { bundleCommand } from '@conveyor-ci/nestjs/cli/bundle.command';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { BenchBroker, makeBenchEvents, type BenchEvent } from './broker';
import { now } from './child-protocol';
import { startupProfile, type StartupProfile } from './cpu-profile';
import { DriverChild, START_TIMEOUT_MS, childEnv } from './driver-child';
import {
  DRIVERS,
  FIRST_RSS_RUNS,
  MID_RSS_RUNS,
  IDLE_MS,
  READY_POLL_MS,
  REFERENCE_LEAK_RUNS,
  SETTLE_MS,
  WARMUP_EVENTS,
  renderFootprint,
  type ColdStart,
  type FootprintDriver,
  type FootprintOptions,
  type FootprintResult,
  type Steady,
} from './footprint.report';
import { cpuTicks, rssMiB, ticksPerSecond, voluntarySwitches } from './proc-stat';
import { fmtRatio, median, percentile, type Machine } from './report';
import { sleep, within } from './wait';

export interface FootprintOutcome {
  markdown: string;
}

const RESULT_TIMEOUT_MS = 30_000;
const PUBLISH_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 15_000;
const PROBE_TIMEOUT_MS = 1_000;

export function leakRunsOf(driver: FootprintDriver, options: FootprintOptions): number {
  return driver.key.startsWith('reference')
    ? Math.min(options.leakRuns, REFERENCE_LEAK_RUNS)
    : options.leakRuns;
}

/** A cheap run for every driver: the reference driver runs its one step, `true`. */
const footprintEvents = (count: number) => makeBenchEvents(count, { steps: [{ name: 'noop', run: 'true' }] });

/** A loopback port free right now (the driver binds it a moment later). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

function spawnDriver(
  driver: FootprintDriver,
  options: FootprintOptions,
  servers: string,
  name: string,
  port: number | undefined,
  label: string,
  cpuProfileDir?: string,
): DriverChild {
  if (driver.key === 'reference' || driver.key === 'reference-bundle') {
    return DriverChild.spawnScript(
      {
        script: driver.key === 'reference' ? options.referenceMain : options.bundles.reference,
        env: {
          CONVEYOR_DRIVER_NAME: name,
          CONVEYOR_NATS_URL: servers,
          PORT: String(port),
          HOST: '127.0.0.1',
        },
        stopSignal: 'SIGTERM',
        // It logs every run at info: kept for a failure's message, not echoed.
        quiet: true,
      },
      label,
    );
  }
  const config = { servers, driver: name, concurrency: 1, handlerDelayMs: 0 };
  if (driver.key === 'loop') return DriverChild.spawn('loop', config, label, START_TIMEOUT_MS);
  return DriverChild.spawn('framework', { ...config, httpPort: port }, label, START_TIMEOUT_MS, {
    cpuProfileDir,
    script: driver.key === 'minimal-bundle' ? options.bundles.minimal : undefined,
  });
}

/** Resolves with the arrival stamp; rejects when the driver fails first or after `timeoutMs`. */
async function untilArrived(
  arrived: Promise<number>,
  child: DriverChild,
  timeoutMs: number,
  what: string,
): Promise<number> {
  let settled = false;
  const failed = (async (): Promise<never> => {
    while (!settled) {
      const failure = child.failure();
      if (failure) throw failure;
      await sleep(50);
    }
    return new Promise<never>(() => undefined);
  })();
  failed.catch(() => undefined);
  try {
    return await within(Promise.race([arrived, failed]), timeoutMs, what);
  } finally {
    settled = true;
  }
}

/** GET /health/ready every READY_POLL_MS until a 200; the stamp of that answer. */
async function untilReady(port: number, child: DriverChild, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const failure = child.failure();
    if (failure) throw failure;
    const status = await new Promise<number>((resolve) => {
      const request = get(
        { host: '127.0.0.1', port, path: '/health/ready', agent: false, timeout: PROBE_TIMEOUT_MS },
        (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        },
      );
      request.on('timeout', () => request.destroy());
      request.on('error', () => resolve(0));
    });
    if (status === 200) return now();
    await sleep(READY_POLL_MS);
  }
  throw new Error(`/health/ready on port ${port} not 200 within ${timeoutMs} ms`);
}

/**
 * Fresh streams, the consumer, one event stored, then the spawn: the driver's cold start, with the
 * driver left running for the caller. With `probeReady`, `/health/ready` is polled from the spawn
 * on; the probes cost the starting driver CPU, so the first-result figure comes from starts without.
 */
async function coldStart(
  broker: BenchBroker,
  driver: FootprintDriver,
  options: FootprintOptions,
  name: string,
  label: string,
  { probeReady = false, cpuProfileDir }: { probeReady?: boolean; cpuProfileDir?: string } = {},
): Promise<{ child: DriverChild; cold: ColdStart }> {
  await broker.reset();
  await broker.createDriverConsumer(name);
  const [event] = footprintEvents(1);
  const watch = await broker.watchResult(event.runId);
  const port = driver.health ? await freePort() : undefined;
  let child: DriverChild | undefined;
  try {
    await broker.publish(name, event);
    const spawnedAt = now();
    child = spawnDriver(driver, options, broker.url, name, port, label, cpuProfileDir);
    const ready = port === undefined || !probeReady ? undefined : untilReady(port, child, START_TIMEOUT_MS);
    ready?.catch(() => undefined);
    const resultAt = await untilArrived(watch.arrived, child, START_TIMEOUT_MS, `${label}: the first result`);
    const readyAt = await ready;
    return {
      child,
      cold: {
        resultMs: resultAt - spawnedAt,
        readyMs: readyAt === undefined ? undefined : readyAt - spawnedAt,
        spawnedAt,
        resultAt,
        startup: child.startup,
      },
    };
  } catch (err) {
    await child?.stop(STOP_TIMEOUT_MS).catch(() => undefined);
    throw err;
  } finally {
    watch.close();
  }
}

/** Publish to stored result of one event, ms, with nothing else in flight. */
async function oneEvent(
  broker: BenchBroker,
  child: DriverChild,
  name: string,
  event: BenchEvent,
): Promise<number> {
  const watch = await broker.watchResult(event.runId);
  try {
    const sentAt = now();
    await broker.publish(name, event);
    return (
      (await untilArrived(watch.arrived, child, RESULT_TIMEOUT_MS, `the result of run ${event.runId}`)) -
      sentAt
    );
  } finally {
    watch.close();
  }
}

/** Publishes `count` events as a backlog and waits until the broker has them all acked. */
async function drain(
  broker: BenchBroker,
  child: DriverChild,
  name: string,
  count: number,
  stallMs: number,
): Promise<void> {
  if (count <= 0) return;
  const lastSeq = await broker.publishAll(name, footprintEvents(count), PUBLISH_TIMEOUT_MS);
  await broker.waitAllAcked(name, lastSeq, {
    timeoutMs: 30_000 + count * 10,
    stallMs,
    failure: () => child.failure(),
  });
}

/** The second life of a driver after its cold start: leak check, warm latency, idle. */
async function steadyState(
  broker: BenchBroker,
  child: DriverChild,
  name: string,
  options: FootprintOptions,
  leakRuns: number,
): Promise<Steady> {
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${name}: no pid`);
  let runs = 1; // the cold start's event
  await drain(broker, child, name, FIRST_RSS_RUNS - runs, options.stallMs);
  runs = FIRST_RSS_RUNS;
  await sleep(SETTLE_MS);
  const rss = [{ runs, mib: rssMiB(pid) }];

  const events = footprintEvents(WARMUP_EVENTS + options.samples);
  const latencies: number[] = [];
  for (const [i, event] of events.entries()) {
    const ms = await oneEvent(broker, child, name, event);
    if (i >= WARMUP_EVENTS) latencies.push(ms);
  }
  runs += events.length;

  await sleep(SETTLE_MS);
  const ticksBefore = cpuTicks(pid);
  const switchesBefore = voluntarySwitches(pid);
  const idleFrom = now();
  await sleep(IDLE_MS);
  const ticks = cpuTicks(pid) - ticksBefore;
  const switches = voluntarySwitches(pid) - switchesBefore;
  const idleSeconds = (now() - idleFrom) / 1000;
  const idleRssMiB = rssMiB(pid);
  const failure = child.failure();
  if (failure) throw failure;

  // A reading on the way shows whether growth goes on (a leak) or levels off (the heap's own size).
  const checkpoints = [...new Set([Math.min(MID_RSS_RUNS, leakRuns), leakRuns])].filter((n) => n > runs);
  for (const checkpoint of checkpoints) {
    await drain(broker, child, name, checkpoint - runs, options.stallMs);
    runs = checkpoint;
    await sleep(SETTLE_MS);
    rss.push({ runs, mib: rssMiB(pid) });
  }
  return {
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    idleRssMiB,
    idleCpuPercent: (ticks / ticksPerSecond() / idleSeconds) * 100,
    idleWakeupsPerSecond: switches / idleSeconds,
    idleSeconds,
    rss,
  };
}

/** One more cold start of the minimal driver under `--cpu-prof`: its start-up by package. */
async function profileStartup(broker: BenchBroker, options: FootprintOptions): Promise<StartupProfile> {
  const dir = mkdtempSync(join(tmpdir(), 'conveyor-footprint-'));
  try {
    const minimal = DRIVERS.find((d) => d.key === 'minimal')!;
    const { child, cold } = await coldStart(broker, minimal, options, 'fp-profile', 'minimal profile', {
      cpuProfileDir: dir,
    });
    // The profile is written when the process exits.
    await child.stop(STOP_TIMEOUT_MS);
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    if (!file || !cold.startup) throw new Error('the profiled driver wrote no profile or no startup report');
    const { clock, phases } = cold.startup;
    const consumingAt = phases[phases.length - 1].at;
    return startupProfile(join(dir, file), clock.monotonicUs - (clock.at - consumingAt) * 1000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function missingEntry(driver: FootprintDriver, options: FootprintOptions): string | undefined {
  const entry = {
    reference: options.referenceMain,
    'reference-bundle': options.bundles.reference,
    'minimal-bundle': options.bundles.minimal,
  }[driver.key as string];
  if (!entry || existsSync(entry)) return undefined;
  return driver.key === 'reference'
    ? `${entry} is missing: run \`npm run build\` first`
    : `${entry} is missing: its \`conveyor-nestjs bundle\` build failed (its message is above) or its entry is missing`;
}

function logCold(driver: FootprintDriver, round: number, cold: ColdStart): void {
  const figure =
    cold.readyMs === undefined
      ? `first result ${cold.resultMs.toFixed(0)} ms`
      : `/health/ready ${cold.readyMs.toFixed(0)} ms (first result ${cold.resultMs.toFixed(0)} ms)`;
  console.log(`cold ${round}  ${driver.key.padEnd(10)} ${figure}`);
}

/**
 * The bundled builds, as a user makes them (`conveyor-nestjs bundle`, primed with its defaults). A
 * build that fails leaves its driver out (missingEntry), with the command's message on stderr.
 */
async function buildBundles(options: FootprintOptions): Promise<void> {
  const builds = [
    { entry: options.referenceMain, main: options.bundles.reference },
    { entry: join(__dirname, 'framework-driver.js'), main: options.bundles.minimal },
  ];
  for (const { entry, main } of builds) {
    rmSync(dirname(main), { recursive: true, force: true });
    if (!existsSync(entry)) continue;
    const io = { out: (line: string) => console.log(line), err: (line: string) => console.error(line) };
    // The priming start reads CONVEYOR_* like any driver: none from the caller's shell.
    await bundleCommand([entry, '--out', dirname(main)], io, childEnv());
  }
}

export async function runFootprint(
  broker: BenchBroker,
  options: FootprintOptions,
  context: { machine: Machine; command: string; date: string },
): Promise<FootprintOutcome> {
  await buildBundles(options);
  const results: FootprintResult[] = DRIVERS.map((driver) => ({
    driver,
    cold: [],
    probed: [],
    skipped: missingEntry(driver, options),
  }));
  const measured = results.filter((r) => !r.skipped);
  for (const r of results) if (r.skipped) console.log(`skipping ${r.driver.key}: ${r.skipped}`);

  // Interleaved, so a slow patch of a shared machine lands on every driver.
  for (let round = 1; round <= options.coldStarts; round++) {
    for (const r of measured) {
      for (const probeReady of r.driver.health ? [false, true] : [false]) {
        const key = `${r.driver.key}-${probeReady ? 'r' : 'c'}${round}`;
        const started = await coldStart(broker, r.driver, options, `fp-${key}`, key, { probeReady });
        await started.child
          .stop(STOP_TIMEOUT_MS)
          .catch((err: Error) => console.warn(`warning: ${err.message}`));
        (probeReady ? r.probed : r.cold).push(started.cold);
        logCold(r.driver, round, started.cold);
      }
    }
  }
  for (const r of measured) {
    const name = `fp-${r.driver.key}-steady`;
    const { child } = await coldStart(broker, r.driver, options, name, `${r.driver.key} steady`);
    try {
      r.steady = await steadyState(broker, child, name, options, leakRunsOf(r.driver, options));
      await child.stop(STOP_TIMEOUT_MS).catch((err: Error) => console.warn(`warning: ${err.message}`));
    } finally {
      await child.stop(STOP_TIMEOUT_MS).catch(() => undefined);
    }
    const s = r.steady;
    console.log(
      `steady ${r.driver.key.padEnd(10)} p50 ${s.p50Ms.toFixed(2)} ms, p99 ${s.p99Ms.toFixed(2)} ms, ` +
        `idle ${s.idleRssMiB.toFixed(1)} MiB ${s.idleCpuPercent.toFixed(2)} % CPU, ` +
        `RSS ${s.rss.map((at) => `${at.mib.toFixed(1)} MiB after ${at.runs} runs`).join(', ')}`,
    );
  }
  // The breakdown explains the figures; without it (no profile written) the figures still stand.
  const profile = await profileStartup(broker, options).catch((err: Error) => {
    console.warn(`warning: no start-up profile: ${err.message}`);
    return undefined;
  });
  await broker.reset();

  const rendered = renderFootprint(results, profile, options, context);
  for (const line of rendered.verdicts) console.log(`${line.name}: ${fmtRatio(line.value)} ${line.verdict}`);
  console.log(
    `median cold start: ${results.map((r) => `${r.driver.key} ${r.cold.length ? median(r.cold.map((c) => c.resultMs)).toFixed(0) : '-'} ms`).join(', ')}`,
  );
  return { markdown: rendered.markdown };
}
