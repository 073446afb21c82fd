import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { randomUUID } from 'node:crypto';
import type { KV } from 'nats';
import { Reconcile, ReconcileContext, Resource, RetryableError, RunControl } from '@conveyor-ci/nestjs';
import { MESSAGES_STREAM } from '@conveyor-ci/nestjs/internal';
import { RUN_LEASES_BUCKET, pipelineStepSubject, resourceLeaseKey } from '@conveyor-ci/nestjs/protocol';
import { NatsFaultProxy, makeResource, publishDriverMessage, sleep } from '@conveyor-ci/testing';
import { CapturedLogs } from '../support/captured-logs';
import { settledDeliveries } from '../support/consumer-deliveries';
import { uniqueDriverName, useDriverApps } from '../support/driver-app';

/**
 * Where two features of the message path meet (slots and leases, timeouts and leases, dead-letter
 * hooks and pulling, cancels and waits), nothing wedges, overlaps or burns attempts.
 */
const suite = useDriverApps();
const { start } = suite;

/** The leases bucket as another tool made it: a 2 s TTL, far below the drivers' default leaseTtlMs (30 s). */
const BUCKET_TTL_MS = 2000;
let leases: KV;
beforeAll(async () => {
  leases = await suite.env.js.views.kv(RUN_LEASES_BUCKET, { ttl: BUCKET_TTL_MS, history: 1 });
});

/** Every handler run, with when it ran (one process: one clock). */
const spans: {
  resource: string;
  runId: string;
  start: number;
  end?: number;
  delivery: number;
  last: boolean;
}[] = [];
beforeEach(() => void spans.splice(0));

function begin(resource: Resource, ctx: ReconcileContext) {
  const span: (typeof spans)[number] = {
    resource: resource.name,
    runId: ctx.runId,
    start: Date.now(),
    delivery: ctx.deliveryCount,
    last: ctx.isLastAttempt,
  };
  spans.push(span);
  return span;
}

/** Pairs of runs of one resource whose handlers overlapped in time. */
function overlaps(): string[] {
  const found: string[] = [];
  for (const name of new Set(spans.map((s) => s.resource))) {
    const mine = spans.filter((s) => s.resource === name).sort((a, b) => a.start - b.start);
    for (let i = 1; i < mine.length; i++)
      if (mine[i].start < (mine[i - 1].end ?? Infinity))
        found.push(`${mine[i - 1].runId} and ${mine[i].runId}`);
  }
  return found;
}

/** How long each test's handlers run or ignore their signal (set per test). */
const plan: { runMs: number; ignoreSignalMs: number; failFirstOf?: string } = { runMs: 0, ignoreSignalMs: 0 };
beforeEach(() => Object.assign(plan, { runMs: 0, ignoreSignalMs: 0, failFirstOf: undefined }));

async function work(resource: Resource, ctx: ReconcileContext) {
  const span = begin(resource, ctx);
  try {
    if (plan.failFirstOf === ctx.runId && ctx.deliveryCount === 1)
      throw new RetryableError('first attempt fails', { delayMs: 100 });
    // A handler that ignores its signal for ignoreSignalMs, then honours it.
    await sleep(plan.ignoreSignalMs);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, plan.runMs);
      ctx.signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
    });
    return { success: true, message: `built ${resource.name}` };
  } finally {
    span.end = Date.now();
  }
}

@Controller()
class SerializeDriver {
  @Reconcile({ resource: 'serial', perResource: 'serialize' })
  run(@Payload() resource: Resource, @Ctx() ctx: ReconcileContext) {
    return work(resource, ctx);
  }
}

@Controller()
class SerializeTimeoutDriver {
  @Reconcile({ resource: 'serial', perResource: 'serialize', timeoutMs: 300 })
  run(@Payload() resource: Resource, @Ctx() ctx: ReconcileContext) {
    return work(resource, ctx);
  }
}

@Controller()
class SupersedeDriver {
  @Reconcile({ resource: 'superseding', perResource: 'supersede' })
  run(@Payload() resource: Resource, @Ctx() ctx: ReconcileContext) {
    return work(resource, ctx);
  }
}

@Controller()
class OneAtATimeDriver {
  @Reconcile({ resource: 'single', concurrency: 1 })
  run(@Payload() resource: Resource, @Ctx() ctx: ReconcileContext) {
    return work(resource, ctx);
  }
}

@Controller()
class HungCleanupDriver {
  @Reconcile({ resource: 'hung-cleanup' })
  run(@Payload() resource: Resource, @Ctx() ctx: ReconcileContext) {
    ctx.onCleanup(() => new Promise<void>(() => undefined), { timeoutMs: 200 });
    return work(resource, ctx);
  }
}

@Controller()
class PlainDriver {
  @Reconcile({ resource: 'widget' })
  run(@Payload() resource: Resource, @Ctx() ctx: ReconcileContext) {
    return work(resource, ctx);
  }
}

async function publishStep(driver: string, type: string, name: string): Promise<string> {
  const runId = randomUUID();
  await publishDriverMessage(suite.env.js, {
    resource: makeResource({ name, resource: type, spec: {} }),
    runId,
    driver,
  });
  return runId;
}

describe('run ownership: where features meet', () => {
  it('a foreign lease entry ({}) wedges no slot: other events run, its resource runs once the entry expires', async () => {
    const name = uniqueDriverName();
    const { strategy } = await start(name, [SupersedeDriver, PlainDriver], { options: { concurrency: 1 } });
    // Written by another tool or version: not a holder this code can read, nor cancel.
    await leases.put(resourceLeaseKey(name, 'superseding', 'repo-x'), new TextEncoder().encode('{}'));
    const blocked = await publishStep(name, 'superseding', 'repo-x');
    const other = await publishStep(name, 'widget', 'repo-y');
    const otherResult = await suite.env.results.waitForRun(other, 10_000);
    expect(otherResult.driverresult).toMatchObject({ success: true, message: 'built repo-y' });
    // Ready (other events run), and saying what waits on what.
    expect(strategy.readiness).toMatchObject({
      ready: true,
      stuck: [expect.stringContaining(`run ${blocked} waits for the lease of superseding/repo-x`)],
    });
    // The foreign entry frees itself by the bucket's TTL; then the resource's event runs.
    const blockedResult = await suite.env.results.waitForRun(blocked, 15_000);
    expect(blockedResult.driverresult).toMatchObject({ success: true, message: 'built repo-x' });
    expect(await settledDeliveries(suite.env.jsm, name)).toBe(2);
  }, 30_000);

  it('a hung onDeadLetter holds no run: good events keep running, and close() keeps its deadline', async () => {
    const name = uniqueDriverName();
    const hooks: number[] = [];
    const { app, strategy } = await start(name, [PlainDriver], {
      options: {
        concurrency: 1,
        shutdownTimeoutMs: 3000,
        deadLetterTimeoutMs: 500,
        onDeadLetter: (record) => {
          hooks.push(record.streamSequence);
          return new Promise<void>(() => undefined); // never settles
        },
      },
    });
    for (let i = 0; i < 4; i++)
      await suite.env.js.publish(
        pipelineStepSubject(name, 'widget'),
        new TextEncoder().encode(`not json ${i}`),
      );
    const good = await publishStep(name, 'widget', 'good');
    const result = await suite.env.results.waitForRun(good, 15_000);
    expect(result.driverresult).toMatchObject({ success: true, message: 'built good' });
    expect(hooks.length).toBeGreaterThanOrEqual(4);
    expect(strategy.readiness.ready).toBe(true);
    expect(strategy.readiness.stuck).toEqual(
      expect.arrayContaining([expect.stringContaining('the dead-letter record of stream seq')]),
    );
    const closing = Date.now();
    await app.close();
    expect(Date.now() - closing).toBeLessThan(3000 + 1500);
  }, 30_000);

  it('serialize with timeoutMs: a handler ignoring its signal keeps the lease until it lets go', async () => {
    const name = uniqueDriverName();
    plan.ignoreSignalMs = 2000;
    await start(name, [SerializeTimeoutDriver], { options: { concurrency: 2 } });
    const first = await publishStep(name, 'serial', 'repo');
    while (!spans.some((s) => s.runId === first)) await sleep(10);
    const second = await publishStep(name, 'serial', 'repo');
    await suite.env.results.waitForRun(first, 10_000);
    await suite.env.results.waitForRun(second, 15_000);
    expect(spans.map((s) => s.runId)).toEqual([first, second]);
    expect(overlaps()).toEqual([]);
  }, 30_000);

  it("the bucket's own TTL drives renewal: a run longer than it keeps its lease", async () => {
    const name = uniqueDriverName();
    plan.runMs = 3 * BUCKET_TTL_MS;
    await start(name, [SerializeDriver], { options: { concurrency: 2 } });
    const first = await publishStep(name, 'serial', 'repo');
    while (!spans.some((s) => s.runId === first)) await sleep(10);
    const second = await publishStep(name, 'serial', 'repo');
    await suite.env.results.waitForRun(first, 15_000);
    await suite.env.results.waitForRun(second, 20_000);
    expect(overlaps()).toEqual([]);
  }, 40_000);

  it('a serialize wait spends no attempt: the waiting event runs as its first delivery, and may retry', async () => {
    const name = uniqueDriverName();
    await start(name, [SerializeDriver], { options: { concurrency: 2, maxAttempts: 3 } });
    plan.runMs = 2500;
    const holder = await publishStep(name, 'serial', 'shared');
    while (!spans.some((s) => s.runId === holder)) await sleep(10);
    plan.runMs = 0;
    const waiting = randomUUID();
    plan.failFirstOf = waiting;
    await publishDriverMessage(suite.env.js, {
      resource: makeResource({ name: 'shared', resource: 'serial', spec: {} }),
      runId: waiting,
      driver: name,
    });
    await suite.env.results.waitForRun(holder, 10_000);
    const result = await suite.env.results.waitForRun(waiting, 15_000);
    // Its first run (after a 2.5 s wait) was attempt 1 of 3; its retry succeeded.
    expect(result.driverresult).toMatchObject({ success: true, message: 'built shared' });
    const runs = spans
      .filter((s) => s.runId === waiting)
      .map((s) => ({ delivery: s.delivery, last: s.last }));
    expect(runs).toEqual([
      { delivery: 1, last: false },
      { delivery: 2, last: false },
    ]);
    expect(overlaps()).toEqual([]);
  }, 40_000);

  it('a cancel of a run waiting here for a slot ends it within a second, as cancelled', async () => {
    const name = uniqueDriverName();
    plan.runMs = 3000;
    // A free instance slot pulls the next event; it waits here for its handler's one slot.
    const { app, strategy } = await start(name, [OneAtATimeDriver], { options: { concurrency: 2 } });
    const busy = await publishStep(name, 'single', 'busy');
    while (!spans.some((s) => s.runId === busy)) await sleep(10);
    const queued = await publishStep(name, 'single', 'queued');
    while (strategy.inFlight < 2) await sleep(10);
    const cancelledAt = Date.now();
    await app.get(RunControl).cancel(queued, 'not needed');
    const result = await suite.env.results.waitForRun(queued, 10_000);
    const settledAfterMs = Date.now() - cancelledAt;
    expect(result.driverresult).toMatchObject({ success: false, message: 'cancelled: not needed' });
    expect(settledAfterMs).toBeLessThan(1000);
    expect(spans.some((s) => s.runId === queued)).toBe(false);
  }, 30_000);

  it('shutdown names a handler still running past its deadline, and says "every run settled" only when true', async () => {
    const name = uniqueDriverName();
    plan.ignoreSignalMs = 6000;
    const logs = new CapturedLogs();
    const { app } = await start(name, [PlainDriver], {
      options: { shutdownTimeoutMs: 300 },
      configure: (a) => a.useLogger(logs),
    });
    const stuck = await publishStep(name, 'widget', 'stuck');
    while (!spans.some((s) => s.runId === stuck)) await sleep(10);
    const closing = Date.now();
    await app.close();
    // The deadline (300 ms) plus the grace for aborted handlers, not the handler's 6 s.
    expect(Date.now() - closing).toBeLessThan(5000);
    expect(logs.matching(/every run settled/)).toEqual([]);
    expect(logs.matching(/still running past the shutdown deadline/)).toEqual([
      expect.stringContaining(`(run ${stuck}), delivery 1: handler ignores its abort signal`),
    ]);
    // Nak'd at the deadline: another replica may take it at once (nothing left for AckWait).
    const info = await suite.env.jsm.consumers.info(MESSAGES_STREAM, name);
    expect(info.num_pending + info.num_ack_pending).toBe(1);
    expect(spans.find((s) => s.runId === stuck)?.end).toBeUndefined(); // the handler still runs
  }, 30_000);

  it('a clean shutdown with runs in flight says every run settled', async () => {
    const name = uniqueDriverName();
    plan.runMs = 500;
    const logs = new CapturedLogs();
    const { app } = await start(name, [PlainDriver], { configure: (a) => a.useLogger(logs) });
    const run = await publishStep(name, 'widget', 'quick');
    while (!spans.some((s) => s.runId === run)) await sleep(10);
    await app.close();
    expect(logs.matching(/every run settled/)).toHaveLength(1);
    expect((await suite.env.results.waitForRun(run, 5000)).driverresult).toMatchObject({ success: true });
  }, 30_000);

  it('a hung cleanup hook holds no run: the next events run, and readiness names it', async () => {
    const name = uniqueDriverName();
    const { strategy } = await start(name, [HungCleanupDriver], { options: { concurrency: 1 } });
    const runs = [];
    for (let i = 0; i < 3; i++) runs.push(await publishStep(name, 'hung-cleanup', `r${i}`));
    for (const run of runs)
      expect((await suite.env.results.waitForRun(run, 5000)).driverresult).toMatchObject({ success: true });
    expect(strategy.readiness.ready).toBe(true);
    expect(strategy.readiness.stuck).toEqual(
      runs.map((run) => expect.stringContaining(`a cleanup hook of run ${run}`)),
    );
    expect(await settledDeliveries(suite.env.jsm, name)).toBe(3);
  }, 30_000);

  it('a redial moves the lease: a run longer than the TTL keeps it across a new connection', async () => {
    const name = uniqueDriverName();
    plan.runMs = 3 * BUCKET_TTL_MS;
    const { strategy } = await start(name, [SerializeDriver], { options: { concurrency: 2 } });
    const first = await publishStep(name, 'serial', 'redialed');
    while (!spans.some((s) => s.runId === first)) await sleep(10);
    // nats.js gives up on the connection for good: the transport dials a new one.
    const old = strategy.unwrap();
    await old.close();
    while (strategy.unwrap() === old || !strategy.isReady) await sleep(20);
    const second = await publishStep(name, 'serial', 'redialed');
    await suite.env.results.waitForRun(first, 15_000);
    await suite.env.results.waitForRun(second, 20_000);
    expect(spans.map((s) => s.runId)).toEqual([first, second]);
    expect(overlaps()).toEqual([]);
  }, 40_000);

  it('a renewal applied whose reply was lost is re-read: the lease holds for the whole run', async () => {
    const proxy = await NatsFaultProxy.start(suite.env.server.port);
    suite.closeAfterTest(() => proxy.close());
    // The first PubAck of the bucket is the create's; the second, a renewal's: lost on the way back.
    let acks = 0;
    const lost = proxy.drop((m) => m.body.includes(`"stream":"KV_${RUN_LEASES_BUCKET}"`) && ++acks === 2);
    const name = uniqueDriverName();
    plan.runMs = 3 * BUCKET_TTL_MS;
    await start(name, [SerializeDriver], { options: { concurrency: 2, servers: proxy.url } });
    const first = await publishStep(name, 'serial', 'renewed');
    while (!spans.some((s) => s.runId === first)) await sleep(10);
    const second = await publishStep(name, 'serial', 'renewed');
    await suite.env.results.waitForRun(first, 15_000);
    await suite.env.results.waitForRun(second, 20_000);
    expect(lost.dropped).toHaveLength(1);
    expect(spans.map((s) => s.runId)).toEqual([first, second]);
    expect(overlaps()).toEqual([]);
  }, 40_000);

  it("a redelivery of the holder's own message waits for its entry to expire: no takeover while it may still run", async () => {
    const name = uniqueDriverName();
    await start(name, [SerializeDriver], { options: { concurrency: 1 } });
    const runId = randomUUID();
    const id = 'feedfacefeedfacefeedface';
    // As a replica that lost the message (its connection) but still runs it leaves the entry.
    const heldAt = Date.now();
    await leases.put(
      resourceLeaseKey(name, 'serial', 'own'),
      new TextEncoder().encode(
        JSON.stringify({
          run_id: runId,
          message_id: id,
          stream_seq: 1,
          renewed_at: new Date().toISOString(),
        }),
      ),
    );
    await publishDriverMessage(suite.env.js, {
      resource: makeResource({ name: 'own', resource: 'serial', spec: {} }),
      runId,
      id,
      driver: name,
    });
    await suite.env.results.waitForRun(runId, 15_000);
    const ran = spans.find((s) => s.runId === runId)!;
    expect(ran.start - heldAt).toBeGreaterThanOrEqual(BUCKET_TTL_MS - 100);
  }, 30_000);
});
