import { Controller, INestApplicationContext, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, Payload } from '@nestjs/microservices';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import {
  ConveyorModule,
  ConveyorModuleOptions,
  Reconcile,
  ReconcileContext,
  Resource,
  RunCancelRequest,
  RunControl,
  RunEnding,
  RunProgress,
  progressReports,
  publishCancel,
} from '@conveyor-ci/nestjs';
import { RUN_CANCELS_BUCKET, abortable, cancelSubject, progressSubject } from '@conveyor-ci/nestjs/internal';
import { eventually, freePort, makeResource, publishDriverMessage, sleep } from '@conveyor-ci/testing';
import { startDriverApp, uniqueDriverName, useDriverApps } from '../support/driver-app';

const suite = useDriverApps();
const { start, expectSettled } = suite;

interface BuildSpec {
  mode: 'sleep' | 'quick' | 'throw' | 'hang' | 'progress' | 'ignore-signal';
}

/** What the handler did, by run id: its step's process group and the cleanups it saw. */
const runs = new Map<string, { pgid?: number; cleanups: RunEnding[]; started: number }>();

/** True while a process of group `pgid` still runs (zombies waiting for a reaper do not count). */
function alive(pgid: number): boolean {
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // pid (comm) state ppid pgrp ...: comm may contain spaces, so split after its closing parenthesis.
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(pgrp) === pgid && state !== 'Z') return true;
  }
  return false;
}

@Controller()
class ControlledDriver {
  @Reconcile({ resource: 'controlled', timeoutMs: 2000 })
  async run(@Payload() resource: Resource<BuildSpec>, @Ctx() ctx: ReconcileContext) {
    const mine = { cleanups: [] as RunEnding[], started: Date.now(), pgid: undefined as number | undefined };
    runs.set(ctx.runId, mine);
    ctx.onCleanup((ending) => void mine.cleanups.push(ending));
    switch (resource.spec.mode) {
      case 'quick':
        return { success: true, message: 'done' };
      case 'throw':
        throw new Error('compiler exploded');
      case 'progress':
        for (let i = 1; i <= 10; i++) {
          ctx.progress({ done: i, total: 10 }, i <= 5 ? 'compile' : 'test');
          await sleep(40);
        }
        return { success: true, message: 'progressed' };
      case 'ignore-signal':
        await sleep(3000);
        return { success: true, message: 'finished late' };
      default: {
        // A step with a grandchild in its own process group, killed on abort like the reference driver's.
        const child = spawn('/bin/sh', ['-c', 'sleep 30 & sleep 30'], { detached: true, stdio: 'ignore' });
        mine.pgid = child.pid;
        ctx.onCleanup(() => {
          if (alive(child.pid!)) process.kill(-child.pid!, 'SIGKILL');
        });
        ctx.signal.addEventListener('abort', () => process.kill(-child.pid!, 'SIGTERM'), { once: true });
        await new Promise((resolve) => child.once('exit', resolve));
        return { success: true, message: 'slept' };
      }
    }
  }
}

async function publish(spec: BuildSpec, runId = randomUUID()) {
  await publishDriverMessage(suite.env.js, {
    resource: makeResource({ name: `c-${spec.mode}`, resource: 'controlled', spec }),
    runId,
  });
  return runId;
}

const controlledOptions = { concurrency: 1, shutdownTimeoutMs: 500 };

describe('cancel', () => {
  it('stops the right run on whichever of two replicas holds it, from a third process', async () => {
    const name = uniqueDriverName();
    await start(name, [ControlledDriver], { options: controlledOptions });
    await start(name, [ControlledDriver], { options: controlledOptions });
    const first = await publish({ mode: 'sleep' });
    const second = await publish({ mode: 'sleep' });
    await eventually(
      () => runs.get(first)?.pgid !== undefined && runs.get(second)?.pgid !== undefined,
      'both runs started',
    );
    const pgid = runs.get(first)!.pgid!;
    const requestedAt = performance.now();
    const { remembered } = await publishCancel(suite.env.nc, first, 'user pressed stop');
    while (alive(pgid) && performance.now() - requestedAt < 5000) await sleep(2);
    const latencyMs = performance.now() - requestedAt;
    expect(alive(pgid)).toBe(false);
    expect(remembered).toBe(true);
    const result = await suite.env.results.waitForRun(first);
    expect(result.driverresult).toMatchObject({ success: false, message: 'cancelled: user pressed stop' });
    expect(runs.get(first)!.cleanups).toEqual([
      { outcome: 'cancelled', reason: 'cancelled: user pressed stop' },
    ]);
    // The other run is untouched until it is cancelled in turn.
    expect(alive(runs.get(second)!.pgid!)).toBe(true);
    expect(suite.env.results.forRun(second)).toEqual([]);
    await publishCancel(suite.env.nc, second, 'done testing');
    await suite.env.results.waitForRun(second);
    expect(suite.env.results.forRun(first)).toHaveLength(1);
    await expectSettled(name, 2);
    process.stdout.write(`cancel latency (publish to process group gone): ${latencyMs.toFixed(1)} ms\n`);
  });

  it('cancels a run that is not delivered yet as soon as it starts, without calling the handler', async () => {
    const name = uniqueDriverName();
    const app = await start(name, [ControlledDriver], { options: controlledOptions });
    const runId = randomUUID();
    await app.app.get(RunControl).cancel(runId, 'superseded by a newer push');
    await publish({ mode: 'quick' }, runId);
    const result = await suite.env.results.waitForRun(runId);
    expect(result.driverresult).toMatchObject({
      success: false,
      message: 'cancelled: superseded by a newer push',
    });
    expect(runs.has(runId)).toBe(false);
    await expectSettled(name, 1);
  });

  it('is remembered in the KV bucket for a replica that starts after the cancel', async () => {
    const runId = randomUUID();
    await publishCancel(suite.env.nc, runId, 'cancelled before any replica ran');
    const name = uniqueDriverName();
    await start(name, [ControlledDriver], { options: controlledOptions });
    await publish({ mode: 'quick' }, runId);
    const result = await suite.env.results.waitForRun(runId);
    expect(result.driverresult.message).toBe('cancelled: cancelled before any replica ran');
    await expectSettled(name, 1);
  });
});

describe('progress', () => {
  it('arrives in order and throttled, the last report included', async () => {
    const name = uniqueDriverName();
    await start(name, [ControlledDriver], { options: controlledOptions });
    const runId = randomUUID();
    const abort = new AbortController();
    const seen: RunProgress[] = [];
    const reading = (async () => {
      for await (const report of progressReports(suite.env.nc, runId, abort.signal)) seen.push(report);
    })();
    await suite.env.nc.flush();
    await publish({ mode: 'progress' }, runId);
    await suite.env.results.waitForRun(runId);
    await eventually(() => seen.at(-1)?.fraction === 1, 'the last progress report');
    abort.abort();
    await reading;
    // 10 reports over ~400 ms, at most one per 500 ms: the first, then the latest when the wait ends.
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(seen.length).toBeLessThan(10);
    expect(seen.map((r) => r.seq)).toEqual([...seen.map((r) => r.seq)].sort((a, b) => a - b));
    expect(seen[0]).toMatchObject({
      run_id: runId,
      driver: name,
      fraction: 0.1,
      done: 1,
      total: 10,
      phase: 'compile',
    });
    expect(seen.at(-1)).toMatchObject({ fraction: 1, done: 10, total: 10, phase: 'test', seq: 10 });
    await expectSettled(name, 1);
  });
});

describe('cleanup hooks run exactly once, before the verb, however the run ends', () => {
  async function endingOf(spec: BuildSpec): Promise<RunEnding[]> {
    const name = uniqueDriverName();
    await start(name, [ControlledDriver], { options: controlledOptions });
    const runId = await publish(spec);
    await suite.env.results.waitForRun(runId);
    await sleep(100); // a second call would come right after the first
    await expectSettled(name, 1);
    return runs.get(runId)!.cleanups;
  }

  it('success', async () => {
    expect(await endingOf({ mode: 'quick' })).toEqual([{ outcome: 'succeeded', reason: 'reconciled' }]);
  });

  it('failure', async () => {
    expect(await endingOf({ mode: 'throw' })).toEqual([
      { outcome: 'failed', reason: 'handler failed: compiler exploded' },
    ]);
  });

  it('timeout', async () => {
    expect(await endingOf({ mode: 'ignore-signal' })).toEqual([
      { outcome: 'timed-out', reason: 'timed out after 2000 ms' },
    ]);
  });

  it('cancel', async () => {
    const name = uniqueDriverName();
    await start(name, [ControlledDriver], { options: controlledOptions });
    const runId = await publish({ mode: 'sleep' });
    await eventually(() => runs.get(runId)?.pgid !== undefined, 'the run started');
    await publishCancel(suite.env.nc, runId, 'stop');
    await suite.env.results.waitForRun(runId);
    await expectSettled(name, 1);
    expect(runs.get(runId)!.cleanups).toEqual([{ outcome: 'cancelled', reason: 'cancelled: stop' }]);
  });

  it('shutdown deadline', async () => {
    const name = uniqueDriverName();
    const { app } = await start(name, [ControlledDriver], { options: controlledOptions });
    const runId = await publish({ mode: 'ignore-signal' });
    await eventually(() => runs.has(runId), 'the run started');
    await app.close(); // shutdownTimeoutMs 500: the deadline aborts the run, which is nak'd for a rerun
    expect(runs.get(runId)!.cleanups).toEqual([
      { outcome: 'shutdown', reason: 'aborted at the shutdown deadline: another replica reruns it' },
    ]);
    expect(suite.env.results.forRun(runId)).toEqual([]);
  });
});

/** `work`, or a rejection after `ms`: a hang fails as an assertion naming `what`, not as a jest timeout. */
async function within<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  const bounded = await abortable(work, undefined, ms);
  if (bounded.ended !== 'done') throw new Error(`${what}: no answer within ${ms} ms`);
  return bounded.value;
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

/** Two apps that cancel runs but reconcile none: neither ever starts the transport's consumer. */
const handlerlessApps: [string, (options: ConveyorModuleOptions) => Promise<INestApplicationContext>][] = [
  [
    'an API attached with connectConveyor',
    async (options) => (await startDriverApp({ options, controllers: [] })).app,
  ],
  [
    'a CLI (an application context, the transport never attached)',
    async (options) => {
      @Module({ imports: [ConveyorModule.forRoot(options)] })
      class CliModule {}
      return NestFactory.createApplicationContext(CliModule, {
        logger: ['error', 'warn'],
        abortOnError: false,
      });
    },
  ],
];

describe.each(handlerlessApps)('run control in %s, with no @Reconcile handlers', (_, create) => {
  async function startApp(options: Partial<ConveyorModuleOptions> = {}): Promise<INestApplicationContext> {
    const app = await create({ driverName: uniqueDriverName('control'), servers: suite.env.url, ...options });
    suite.closeAfterTest(() => app.close());
    return app;
  }

  it('cancel() reaches the broker: the core subject and the KV bucket', async () => {
    const app = await startApp();
    const runId = randomUUID();
    const heard = suite.env.nc.subscribe(cancelSubject(runId), { max: 1 });
    await suite.env.nc.flush();
    const { remembered } = await within(
      app.get(RunControl).cancel(runId, 'stopped from the API'),
      5000,
      'RunControl.cancel',
    );
    expect(remembered).toBe(true);
    const [live] = await within(collect(heard), 2000, 'the cancel on the core subject');
    expect(JSON.parse(live.string())).toMatchObject({ run_id: runId, reason: 'stopped from the API' });
    const stored = await (await suite.env.js.views.kv(RUN_CANCELS_BUCKET)).get(runId);
    expect(JSON.parse(stored!.string()) as RunCancelRequest).toMatchObject({
      run_id: runId,
      reason: 'stopped from the API',
    });
  });

  it('watchProgress() yields the reports published, and ends when the app closes', async () => {
    const app = await startApp();
    const runId = randomUUID();
    const reports = app.get(RunControl).watchProgress(runId)[Symbol.asyncIterator]();
    const first = reports.next();
    const report: RunProgress = {
      run_id: runId,
      driver: 'elsewhere',
      fraction: 0.5,
      seq: 1,
      at: new Date().toISOString(),
    };
    // The subscription starts with the first next(): publish until it hears one.
    const publishing = setInterval(
      () => suite.env.nc.publish(progressSubject(runId, 'elsewhere'), JSON.stringify(report)),
      50,
    );
    try {
      expect(await within(first, 5000, 'the first progress report')).toEqual({ done: false, value: report });
    } finally {
      clearInterval(publishing);
    }
    // Nothing aborts the watch: closing the app must release its connection, which ends the stream.
    const rest = collect({ [Symbol.asyncIterator]: () => reports });
    await within(app.close(), 5000, 'app.close');
    expect((await within(rest, 2000, 'the end of the watch')).every((r) => r.run_id === runId)).toBe(true);
  });

  it('cancel() rejects naming the server when NATS cannot be reached', async () => {
    const server = `nats://127.0.0.1:${await freePort()}`;
    const app = await startApp({ servers: server });
    const cancelled = app.get(RunControl).cancel(randomUUID(), 'nobody hears this');
    await expect(within(cancelled, 15_000, 'RunControl.cancel')).rejects.toThrow(server);
  });
});
