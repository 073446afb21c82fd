import { Controller } from '@nestjs/common';
import { Ctx } from '@nestjs/microservices';
import { randomBytes, randomUUID } from 'node:crypto';
import {
  DeadLetterRecord,
  Reconcile,
  ReconcileContext,
  Resource,
  deleteDriverConsumer,
} from '@conveyor-ci/nestjs';
import { MESSAGES_STREAM } from '@conveyor-ci/nestjs/internal';
import {
  ConveyorTestingModule,
  NatsFaultProxy,
  eventually,
  makeResource,
  sleep,
  waitForConsumer,
  waitForSettled,
} from '@conveyor-ci/testing';
import { pipelineStepSubject } from '../../libs/conveyor/src/protocol';
import { settledDeliveries } from '../support/consumer-deliveries';
import { publishStep } from '../support/publish-step';
import { uniqueDriverName, useDriverApps } from '../support/driver-app';

/** A small max_payload, so an escaped result can exceed it with a modest event. */
const MAX_PAYLOAD = 256 * 1024;
const suite = useDriverApps({ maxPayload: MAX_PAYLOAD });
const { start, closeAfterTest } = suite;

const publish = (driver: string, resource: string, spec: unknown = {}) =>
  publishStep(suite.env, driver, resource, spec);

/** Deliveries the consumer made (redeliveries included), once nothing is pending. */
const deliveriesOnceSettled = (name: string) => settledDeliveries(suite.env.jsm, name, 15_000);

@Controller()
class UnencodableDriver {
  @Reconcile({ resource: 'cyclic' })
  cyclic() {
    const data: Record<string, unknown> = { step: 'build' };
    data.self = data;
    return { success: true, message: 'built', data };
  }

  @Reconcile({ resource: 'bigint' })
  bigint() {
    return { success: true, message: 'counted', data: { bytes: BigInt(2) ** BigInt(70) } };
  }
}

describe('results that cannot be published as they are', () => {
  it('gives a cycle or a BigInt in data exactly one failure result, acked, delivered once; the testing module agrees', async () => {
    const name = uniqueDriverName();
    await start(name, [UnencodableDriver]);
    const cyclic = await publish(name, 'cyclic');
    const bigint = await publish(name, 'bigint');
    const [a, b] = await Promise.all([
      suite.env.results.waitForRun(cyclic.message.run_id),
      suite.env.results.waitForRun(bigint.message.run_id),
    ]);
    expect(a.driverresult).toEqual({
      success: false,
      message: expect.stringMatching(/^result data is not JSON-encodable: .*circular/i),
      data: null,
      driver: name,
    });
    expect(b.driverresult.message).toMatch(/^result data is not JSON-encodable: .*BigInt/);
    expect(await deliveriesOnceSettled(name)).toBe(2);
    expect(suite.env.results.forRun(cyclic.message.run_id)).toHaveLength(1);
    expect(suite.env.results.forRun(bigint.message.run_id)).toHaveLength(1);

    const testing = await ConveyorTestingModule.create({
      controllers: [UnencodableDriver],
      options: { driverName: name },
    });
    closeAfterTest(() => testing.close());
    const resource = JSON.parse(cyclic.message.payload as string) as Resource;
    const run = await testing.reconcile(resource, { runId: cyclic.message.run_id });
    expect(run.verb).toEqual({ verb: 'ack' });
    expect(run.result?.driverresult).toEqual(a.driverresult);
  });

  it('replaces a result above max_payload by one failure result that fits; the next event runs on a concurrency-1 driver', async () => {
    const name = uniqueDriverName();
    @Controller()
    class EchoDriver {
      @Reconcile({ resource: 'echo' })
      echo(@Ctx() ctx: ReconcileContext) {
        return { success: true, message: 'echoed', data: ctx.resource.spec };
      }
    }
    await start(name, [EchoDriver], { options: { concurrency: 1 } });
    // 60,000 "<" travel raw in the event (60 KB) but take six bytes each in a Go-escaped result.
    const resource = makeResource({ name: 'html', resource: 'echo', spec: { page: '<'.repeat(60_000) } });
    const runId = randomUUID();
    const raw = JSON.stringify({
      event: 'create',
      payload: JSON.stringify(resource),
      id: randomBytes(12).toString('hex'),
      run_id: runId,
    });
    expect(raw.length).toBeLessThan(MAX_PAYLOAD);
    await suite.env.js.publish(pipelineStepSubject(name, 'echo'), raw);
    const good = await publish(name, 'echo', { page: 'ok' });

    const big = await suite.env.results.waitForRun(runId);
    expect(big.driverresult).toMatchObject({
      success: false,
      message: expect.stringMatching(
        new RegExp(
          `^result is \\d{6} bytes, above the server's max_payload of ${MAX_PAYLOAD} bytes: data dropped`,
        ),
      ),
      data: null,
    });
    // The engine still finds the step: name, type and pipeline survive.
    expect(big.resource).toMatchObject({ name: 'html', resource: 'echo' });
    const stored = suite.env.results.results.find((r) => r.event.run_id === runId)!;
    expect(Buffer.byteLength(stored.raw)).toBeLessThan(MAX_PAYLOAD);
    expect((await suite.env.results.waitForRun(good.message.run_id)).driverresult.success).toBe(true);
    expect(await deliveriesOnceSettled(name)).toBe(2);
  });

  it('dead-letters a message whose result no stream can store, then terminates it', async () => {
    const name = uniqueDriverName();
    const records: DeadLetterRecord[] = [];
    await start(name, [UnencodableDriver], { options: { onDeadLetter: (r) => void records.push(r) } });
    await suite.env.jsm.streams.delete('pipeline-engine');
    try {
      const sent = await publish(name, 'bigint');
      await eventually(() => records.length === 1, 'a dead-letter record', 15_000);
      expect(records[0]).toMatchObject({
        streamSequence: sent.seq,
        reason: expect.stringMatching(/^no result can be stored: no JetStream stream captures/),
      });
      expect(await deliveriesOnceSettled(name)).toBe(1);
    } finally {
      await suite.env.jsm.streams.add({
        name: 'pipeline-engine',
        subjects: ['pipelines.>'],
        retention: 'workqueue' as never,
      });
    }
  });
});

describe('the consumer session', () => {
  it('recovers from its consumer deleted twice in a row, and says so in readiness meanwhile', async () => {
    const name = uniqueDriverName();
    @Controller()
    class Driver {
      @Reconcile({ resource: 'thing' })
      run() {
        return { success: true };
      }
    }
    const { strategy } = await start(name, [Driver]);
    const reasons = new Set<string>();
    // Every state change, read at once: the not-ready window can be a few milliseconds.
    const watcher = strategy.status.subscribe(() => {
      const { ready, reason } = strategy.readiness;
      if (!ready && reason) reasons.add(reason);
    });
    closeAfterTest(async () => watcher.unsubscribe());
    await deleteDriverConsumer(suite.env.jsm, name);
    await waitForConsumer(suite.env.jsm, name);
    await deleteDriverConsumer(suite.env.jsm, name);
    await eventually(() => strategy.isReady && reasons.size > 0, 'ready again', 15_000);
    await waitForConsumer(suite.env.jsm, name);
    expect([...reasons].join('; ')).toMatch(/consumer was deleted/);
    const sent = await publish(name, 'thing');
    await suite.env.results.waitForRun(sent.message.run_id, 10_000);
  });

  it('takes an over-delivered pull without throwing, within its slots, and leaves nothing for AckWait', async () => {
    const proxy = await NatsFaultProxy.start(suite.env.server.port);
    closeAfterTest(() => proxy.close());
    // Every pull asks for 4 more messages than the driver meant to take.
    const rewrites = proxy.rewritePublishes(
      (subject) => subject.startsWith('$JS.API.CONSUMER.MSG.NEXT.'),
      (body) => body.replace(/"batch":(\d+)/, (_m, n: string) => `"batch":${Number(n) + 4}`),
      1000,
    );
    let running = 0;
    let peak = 0;
    const runs: string[] = [];
    @Controller()
    class SlowDriver {
      @Reconcile({ resource: 'slow' })
      async run(@Ctx() ctx: ReconcileContext) {
        runs.push(ctx.runId);
        peak = Math.max(peak, ++running);
        await sleep(150);
        running -= 1;
        return { success: true };
      }
    }
    const name = uniqueDriverName();
    const { strategy } = await start(name, [SlowDriver], { options: { servers: proxy.url, concurrency: 2 } });
    const started = Date.now();
    const sent = await Promise.all(Array.from({ length: 12 }, () => publish(name, 'slow')));
    for (const s of sent) await suite.env.results.waitForRun(s.message.run_id, 20_000);
    expect(Date.now() - started).toBeLessThan(15_000); // AckWait is 30 s: nothing waited for it
    expect(rewrites.rewritten.length).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(2);
    expect(new Set(runs).size).toBe(12);
    expect(runs).toHaveLength(12);
    expect(await deliveriesOnceSettled(name)).toBe(12);
    expect(strategy.stats.settled.succeeded).toBe(12);
  });

  it('resumes pulling within 2 s of reconnecting after a nats-server restart', async () => {
    const name = uniqueDriverName();
    const starts: number[] = [];
    const settled: number[] = [];
    @Controller()
    class Driver {
      @Reconcile({ resource: 'steady' })
      async run() {
        starts.push(Date.now());
        await sleep(100);
        return { success: true };
      }
    }
    const { strategy } = await start(name, [Driver], { options: { concurrency: 2 } });
    strategy.observe({
      messageSettled: ({ outcome }) => outcome === 'succeeded' && settled.push(Date.now()),
    });
    let reconnectedAt = 0;
    strategy.on('reconnect', () => (reconnectedAt ||= Date.now()));
    const sent = await Promise.all(Array.from({ length: 60 }, () => publish(name, 'steady')));
    await eventually(() => settled.length >= 6, 'a few results before the restart', 10_000);
    await suite.env.server.restart('SIGTERM');
    await eventually(() => reconnectedAt > 0, 'the driver reconnecting', 15_000);
    // A run in flight across the restart can settle after the reconnect before any new one starts:
    // wait for both kinds of evidence, then check how soon each came.
    await eventually(() => settled.some((t) => t > reconnectedAt), 'a result after the reconnect', 10_000);
    await eventually(
      () => starts.some((t) => t > reconnectedAt),
      'a run started after the reconnect',
      10_000,
    );
    expect(starts.find((t) => t > reconnectedAt)! - reconnectedAt).toBeLessThan(2000);
    expect(settled.find((t) => t > reconnectedAt)! - reconnectedAt).toBeLessThan(2000);
    await eventually(
      () => sent.every((s) => suite.env.results.forRun(s.message.run_id).length > 0),
      'every event reconciled',
      30_000,
    );
    await waitForSettled(suite.env.jsm, name, 15_000);
  });
});

describe("ackMode 'onReceive' (Go parity, at-most-once)", () => {
  it('acks before the handler runs and still publishes the result', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let started = false;
    @Controller()
    class EagerDriver {
      @Reconcile({ resource: 'eager' })
      async run() {
        started = true;
        await gate;
        return { success: true, message: 'finished after the ack' };
      }
    }
    const name = uniqueDriverName();
    await start(name, [EagerDriver], {
      options: { ackMode: 'onReceive' },
    });
    const sent = await publishStep(suite.env, name, 'eager');
    await eventually(() => started, 'the handler started');
    // Acked while still running. The ack travels on the driver's connection and this check on
    // another, so the server may answer the check first: ask until it saw the ack (or fail).
    let info = await suite.env.jsm.consumers.info(MESSAGES_STREAM, name);
    for (let i = 0; i < 50 && info.num_ack_pending !== 0; i++) {
      await sleep(20);
      info = await suite.env.jsm.consumers.info(MESSAGES_STREAM, name);
    }
    expect([info.num_ack_pending, info.num_pending]).toEqual([0, 0]);
    expect(started).toBe(true);
    release();
    expect((await suite.env.results.waitForRun(sent.message.run_id)).driverresult.message).toBe(
      'finished after the ack',
    );
    expect(await settledDeliveries(suite.env.jsm, name)).toBe(1);
  });
});
