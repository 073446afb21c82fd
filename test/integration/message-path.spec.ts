import { Controller } from '@nestjs/common';
import { Ctx } from '@nestjs/microservices';
import { randomBytes, randomUUID } from 'node:crypto';
import {
  DeadLetterRecord,
  MESSAGES_STREAM,
  Reconcile,
  ReconcileContext,
  Resource,
  deleteDriverConsumer,
} from '@conveyor-ci/nestjs';
import {
  ConveyorTestingModule,
  NatsFaultProxy,
  eventually,
  makeResource,
  publishDriverMessage,
  sleep,
  waitForConsumer,
  waitForSettled,
} from '@conveyor-ci/testing';
import { pipelineStepSubject } from '../../libs/conveyor/src/protocol';
import { settledDeliveries } from '../support/consumer-deliveries';
import { uniqueDriverName, useDriverApps } from '../support/driver-app';

/** A small max_payload, so an escaped result can exceed it with a modest event. */
const MAX_PAYLOAD = 256 * 1024;
const suite = useDriverApps({ maxPayload: MAX_PAYLOAD });
const { start, closeAfterTest } = suite;

function publish(driver: string, resource: string, spec: unknown = {}) {
  return publishDriverMessage(suite.env.js, {
    driver,
    resource: makeResource({ name: `${resource}-${randomUUID().slice(0, 8)}`, resource, spec }),
  });
}

/** Deliveries the consumer made (redeliveries included), once nothing is pending. */
const deliveriesOnceSettled = (name: string) => settledDeliveries(suite.env.jsm, name, 15_000);

/** Results stored in the engine's stream (a work queue nobody reads in these tests). */
async function storedResults(): Promise<number> {
  return (await suite.env.jsm.streams.info('pipeline-engine')).state.messages;
}

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
    await eventually(() => settled.some((t) => t > reconnectedAt), 'a result after the reconnect', 10_000);
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

describe('shutdown without double results', () => {
  it('acks a run whose result publish is on the wire at the deadline: one stored result, no rerun', async () => {
    const proxy = await NatsFaultProxy.start(suite.env.server.port);
    closeAfterTest(() => proxy.close());
    const lost = proxy.drop((m) => m.body.includes('"stream":"pipeline-engine"'));
    let calls = 0;
    @Controller()
    class Driver {
      @Reconcile({ resource: 'once' })
      run() {
        calls += 1;
        return { success: true, message: 'done' };
      }
    }
    const name = uniqueDriverName();
    const first = await start(name, [Driver], { options: { servers: proxy.url, shutdownTimeoutMs: 300 } });
    const before = await storedResults();
    const sent = await publish(name, 'once');
    await eventually(() => lost.dropped.length === 1, 'the PubAck lost on the way', 10_000);
    // The result is stored, its PubAck is lost: shutdown reaches its deadline while publishing.
    await first.app.close();
    expect(await storedResults()).toBe(before + 1);
    const info = await suite.env.jsm.consumers.info(MESSAGES_STREAM, name);
    expect([info.delivered.consumer_seq, info.num_ack_pending, info.ack_floor.stream_seq]).toEqual([
      1,
      0,
      sent.seq,
    ]);
    // A second replica finds nothing to rerun.
    await start(name, [Driver]);
    await sleep(1500);
    expect(calls).toBe(1);
    expect(await storedResults()).toBe(before + 1);
  });

  it("gives a run aborted at the deadline a failure result with ackMode 'onReceive' (nobody reruns it)", async () => {
    @Controller()
    class Stuck {
      @Reconcile({ resource: 'stuck' })
      async run() {
        await sleep(5000); // ignores its signal
        return { success: true };
      }
    }
    const name = uniqueDriverName();
    const app = await start(name, [Stuck], { options: { ackMode: 'onReceive', shutdownTimeoutMs: 200 } });
    const sent = await publish(name, 'stuck');
    await eventually(() => app.strategy.inFlight === 1, 'the run to start', 10_000);
    await sleep(100);
    await app.app.close();
    const result = await suite.env.results.waitForRun(sent.message.run_id, 5000);
    expect(result.driverresult).toMatchObject({
      success: false,
      message: expect.stringMatching(/shutdown deadline/),
    });
    expect(await deliveriesOnceSettled(name)).toBe(1);
  });
});

describe('bounds for what cannot run', () => {
  it('dead-letters a message no handler serves once it is older than unroutedDeadLetterMs, and counts it held meanwhile', async () => {
    const name = uniqueDriverName();
    @Controller()
    class Both {
      @Reconcile({ resource: 'kept' })
      kept() {
        return { success: true };
      }
      @Reconcile({ resource: 'retired' })
      retired() {
        return { success: true };
      }
    }
    @Controller()
    class KeptOnly {
      @Reconcile({ resource: 'kept' })
      kept() {
        return { success: true };
      }
    }
    const once = await start(name, [Both]);
    await once.app.close();
    const records: DeadLetterRecord[] = [];
    const { strategy } = await start(name, [KeptOnly], {
      options: { unroutedDeadLetterMs: 1000, onDeadLetter: (r) => void records.push(r) },
    });
    const sent = await publish(name, 'retired');
    await eventually(() => strategy.stats.unroutedHeld === 1, 'the message held', 5000);
    await eventually(() => records.length === 1, 'the dead-letter record', 15_000);
    expect(records[0]).toMatchObject({
      streamSequence: sent.seq,
      deliveryCount: 2,
      reason: expect.stringMatching(/^no handler for subject drivers\..*\.resources\.retired/),
    });
    expect(suite.env.results.forRun(sent.message.run_id)).toHaveLength(0);
    expect(await deliveriesOnceSettled(name)).toBe(2);
    expect(strategy.stats.unroutedHeld).toBe(0);
  });

  it('reports a failure for a run whose resource is readable but not valid, and records why otherwise', async () => {
    const name = uniqueDriverName();
    const records: DeadLetterRecord[] = [];
    @Controller()
    class Driver {
      @Reconcile({ resource: 'odd' })
      run() {
        return { success: true };
      }
    }
    await start(name, [Driver], { options: { onDeadLetter: (r) => void records.push(r) } });
    const runId = randomUUID();
    const payload = JSON.stringify({
      id: 'x',
      name: 'odd-1',
      pipeline: 'p',
      resource: 'odd',
      metadata: 'not an object',
      spec: {},
    });
    const subject = pipelineStepSubject(name, 'odd');
    await suite.env.js.publish(
      subject,
      JSON.stringify({ event: 'create', payload, id: 'a'.repeat(24), run_id: runId }),
    );
    await suite.env.js.publish(
      subject,
      JSON.stringify({ event: 'create', payload: '{', id: 'b'.repeat(24) }),
    );
    const result = await suite.env.results.waitForRun(runId);
    expect(result.driverresult).toMatchObject({ success: false, message: expect.stringMatching(/metadata/) });
    expect(result.resource).toMatchObject({ name: 'odd-1', resource: 'odd', pipeline: 'p' });
    await eventually(() => records.length === 2, 'two dead-letter records', 10_000);
    const unnamed = records.find((r) => r.runId === undefined)!;
    expect(unnamed.noResult).toMatch(/run id is unreadable/);
    expect(await deliveriesOnceSettled(name)).toBe(2);
  });

  it('keeps a message waiting for its handler limit off the instance slot another handler can use', async () => {
    const name = uniqueDriverName();
    const finished: string[] = [];
    @Controller()
    class Mixed {
      @Reconcile({ resource: 'serial', concurrency: 1 })
      async serial(@Ctx() ctx: ReconcileContext) {
        await sleep(600);
        finished.push(`serial:${ctx.runId}`);
        return { success: true };
      }
      @Reconcile({ resource: 'quick' })
      quick(@Ctx() ctx: ReconcileContext) {
        finished.push(`quick:${ctx.runId}`);
        return { success: true };
      }
    }
    await start(name, [Mixed], { options: { concurrency: 2 } });
    const serial = [
      await publish(name, 'serial'),
      await publish(name, 'serial'),
      await publish(name, 'serial'),
    ];
    const quick = await publish(name, 'quick');
    await suite.env.results.waitForRun(quick.message.run_id, 10_000);
    // The quick run did not wait behind the serial queue: at most the first serial run finished before it.
    expect(finished.indexOf(`quick:${quick.message.run_id}`)).toBeLessThanOrEqual(1);
    for (const s of serial) await suite.env.results.waitForRun(s.message.run_id, 10_000);
    expect(await deliveriesOnceSettled(name)).toBe(4);
  });
});
