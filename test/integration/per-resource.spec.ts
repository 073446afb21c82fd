import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { randomUUID } from 'node:crypto';
import { Reconcile, ReconcileContext, Resource, RetryableError } from '@conveyor-ci/nestjs';
import { makeResource, publishDriverMessage, sleep } from '@conveyor-ci/testing';
import { settledDeliveries } from '../support/consumer-deliveries';
import { uniqueDriverName, useDriverApps } from '../support/driver-app';

const suite = useDriverApps();
const { start } = suite;

/** Every run's resource and when it ran, across both replicas (one process: one clock). */
const spans: { resource: string; runId: string; start: number; end?: number }[] = [];

async function work(resource: Resource, ctx: ReconcileContext) {
  const span: (typeof spans)[number] = { resource: resource.name, runId: ctx.runId, start: Date.now() };
  spans.push(span);
  try {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 150);
      ctx.signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
    });
    if (ctx.signal.aborted) throw ctx.signal.reason;
    return { success: true, message: `built ${resource.name}` };
  } finally {
    span.end = Date.now();
  }
}

@Controller()
class SerializedDriver {
  @Reconcile({ resource: 'serial', perResource: 'serialize' })
  run(@Payload() resource: Resource, @Ctx() ctx: ReconcileContext) {
    return work(resource, ctx);
  }
}

@Controller()
class SupersedingDriver {
  @Reconcile({ resource: 'superseding', perResource: 'supersede' })
  run(@Payload() resource: Resource, @Ctx() ctx: ReconcileContext) {
    return work(resource, ctx);
  }
}

/** Ignores its signal for 1.5 s (longer than a nak'd wait), past its 150 ms timeout: it keeps running after its result. */
async function stubborn(resource: Resource, ctx: ReconcileContext) {
  const span: (typeof spans)[number] = { resource: resource.name, runId: ctx.runId, start: Date.now() };
  spans.push(span);
  await sleep(1500);
  span.end = Date.now();
  return { success: true, message: `built ${resource.name}` };
}

@Controller()
class StubbornSerialDriver {
  @Reconcile({ resource: 'stubborn-serial', perResource: 'serialize', timeoutMs: 150 })
  run(@Payload() resource: Resource, @Ctx() ctx: ReconcileContext) {
    return stubborn(resource, ctx);
  }
}

@Controller()
class StubbornSupersedingDriver {
  @Reconcile({ resource: 'stubborn-superseding', perResource: 'supersede', timeoutMs: 150 })
  run(@Payload() resource: Resource, @Ctx() ctx: ReconcileContext) {
    return stubborn(resource, ctx);
  }
}

/** Runs that were asked to retry once (their first call throws). */
const retried = new Set<string>();

@Controller()
class RetryOnceSerialDriver {
  @Reconcile({ resource: 'retry-serial', perResource: 'serialize', maxAttempts: 2 })
  async run(@Payload() resource: Resource, @Ctx() ctx: ReconcileContext) {
    if (!retried.has(ctx.runId)) {
      retried.add(ctx.runId);
      throw new RetryableError('first call fails', { delayMs: 50 });
    }
    return work(resource, ctx);
  }
}

/** No two spans of one resource overlap. */
function overlaps(resource: string): string[] {
  const mine = spans.filter((s) => s.resource === resource).sort((a, b) => a.start - b.start);
  const found: string[] = [];
  for (let i = 1; i < mine.length; i++) {
    if (mine[i].start < mine[i - 1].end!) found.push(`${mine[i - 1].runId} and ${mine[i].runId}`);
  }
  return found;
}

async function publishBurst(type: string, count: number): Promise<{ runId: string; name: string }[]> {
  const sent: { runId: string; name: string }[] = [];
  for (let i = 0; i < count; i++) {
    const name = `repo-${i % 3}`;
    const runId = randomUUID();
    await publishDriverMessage(suite.env.js, {
      resource: makeResource({ name, resource: type, spec: {} }),
      runId,
    });
    sent.push({ runId, name });
  }
  return sent;
}

const options = { concurrency: 4, leaseTtlMs: 3000 };

describe('perResource across two replicas', () => {
  beforeEach(() => void spans.splice(0));

  it('serialize: 20 events for 3 resources, never two runs of one resource at once, every event run', async () => {
    const name = uniqueDriverName();
    await start(name, [SerializedDriver], { options });
    await start(name, [SerializedDriver], { options });
    const sent = await publishBurst('serial', 20);
    for (const s of sent) {
      const result = await suite.env.results.waitForRun(s.runId, 60_000);
      expect(result.driverresult).toMatchObject({ success: true, message: `built ${s.name}` });
    }
    for (const resource of ['repo-0', 'repo-1', 'repo-2']) expect(overlaps(resource)).toEqual([]);
    expect(spans).toHaveLength(20);
    // Every event delivered at least once; the waits are naks, so more deliveries than events.
    expect(await settledDeliveries(suite.env.jsm, name)).toBeGreaterThanOrEqual(20);
  }, 90_000);

  it('supersede: a newer event cancels the run in flight; superseded results say by which run', async () => {
    const name = uniqueDriverName();
    await start(name, [SupersedingDriver], { options });
    await start(name, [SupersedingDriver], { options });
    const sent = await publishBurst('superseding', 20);
    const results = [];
    for (const s of sent)
      results.push({ ...s, result: (await suite.env.results.waitForRun(s.runId, 60_000)).driverresult });
    for (const resource of ['repo-0', 'repo-1', 'repo-2']) expect(overlaps(resource)).toEqual([]);
    const superseded = results.filter((r) => !r.result.success);
    expect(superseded.length).toBeGreaterThan(0);
    for (const r of superseded)
      expect(r.result.message).toMatch(/^cancelled: superseded by run [0-9a-f-]{36}$/);
    // The newest event of each resource is never superseded.
    for (const resource of ['repo-0', 'repo-1', 'repo-2']) {
      const last = results.filter((r) => r.name === resource).at(-1)!;
      expect(last.result).toMatchObject({ success: true, message: `built ${resource}` });
    }
    expect(await settledDeliveries(suite.env.jsm, name)).toBeGreaterThanOrEqual(20);
  }, 90_000);

  it("a replica that dies holding a lease: the lease expires and the resource's next event runs", async () => {
    const name = uniqueDriverName();
    const first = await start(name, [SerializedDriver], {
      // Its run can never publish now: the close must not wait the default 25 s for it.
      options: { ...options, concurrency: 1, shutdownTimeoutMs: 500 },
    });
    const [held] = await publishBurst('serial', 1);
    while (!spans.some((s) => s.runId === held.runId)) await sleep(10);
    // The replica's process "dies": its connection goes without releasing anything.
    await first.strategy.unwrap().close();
    await start(name, [SerializedDriver], { options: { ...options, concurrency: 1 } });
    const [next] = await publishBurst('serial', 1);
    const startedAt = Date.now();
    const result = await suite.env.results.waitForRun(next.runId, 30_000);
    expect(result.driverresult).toMatchObject({ success: true });
    // It waited for the dead holder's lease to expire (leaseTtlMs 3000), not forever.
    expect(Date.now() - startedAt).toBeLessThan(15_000);
  }, 60_000);

  it.each([
    ['serialize', StubbornSerialDriver, 'stubborn-serial'],
    ['supersede', StubbornSupersedingDriver, 'stubborn-superseding'],
  ] as const)(
    '%s, handlers ignoring their signal past timeoutMs: never two handlers of one resource at once',
    async (_policy, driver, type) => {
      const name = uniqueDriverName();
      await start(name, [driver], { options });
      await start(name, [driver], { options });
      const sent = await publishBurst(type, 9);
      for (const s of sent) {
        const result = (await suite.env.results.waitForRun(s.runId, 60_000)).driverresult;
        // Timed out (the handler ran past 150 ms), or superseded before it started.
        expect(result.message).toMatch(/^(timed out after 150 ms|cancelled: superseded by run .*)$/);
      }
      // Handlers that ran on past their result still held the resource until they let go.
      while (spans.some((sp) => sp.end === undefined)) await sleep(20);
      for (const resource of ['repo-0', 'repo-1', 'repo-2']) expect(overlaps(resource)).toEqual([]);
      expect(await settledDeliveries(suite.env.jsm, name)).toBeGreaterThanOrEqual(9);
    },
    90_000,
  );

  it('serialize: a wait leaves the handler all its attempts (maxAttempts 2, every first call retries)', async () => {
    const name = uniqueDriverName();
    await start(name, [RetryOnceSerialDriver], { options });
    await start(name, [RetryOnceSerialDriver], { options });
    const sent = await publishBurst('retry-serial', 12);
    for (const s of sent) {
      const result = await suite.env.results.waitForRun(s.runId, 60_000);
      expect(result.driverresult).toMatchObject({ success: true, message: `built ${s.name}` });
    }
    for (const resource of ['repo-0', 'repo-1', 'repo-2']) expect(overlaps(resource)).toEqual([]);
    expect(spans).toHaveLength(12);
  }, 90_000);
});
