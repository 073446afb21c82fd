import { Controller } from '@nestjs/common';
import { Ctx } from '@nestjs/microservices';
import { randomUUID } from 'node:crypto';
import { DeadLetterRecord, Reconcile, ReconcileContext } from '@conveyor-ci/nestjs';
import { MESSAGES_STREAM } from '@conveyor-ci/nestjs/internal';
import { NatsFaultProxy, eventually, sleep } from '@conveyor-ci/testing';
import { pipelineStepSubject } from '../../libs/conveyor/src/protocol';
import { settledDeliveries } from '../support/consumer-deliveries';
import { uniqueDriverName, useDriverApps } from '../support/driver-app';
import { publishStep } from '../support/publish-step';

/** Shutdown and the bounds of the message path (v2); results and the session are in message-path.spec.ts. */
const suite = useDriverApps();
const { start, closeAfterTest } = suite;

const publish = (driver: string, resource: string, spec: unknown = {}) =>
  publishStep(suite.env, driver, resource, spec);

/** Deliveries the consumer made (redeliveries included), once nothing is pending. */
const deliveriesOnceSettled = (name: string) => settledDeliveries(suite.env.jsm, name, 15_000);

/** Results stored in the engine's stream (a work queue nobody reads in these tests). */
async function storedResults(): Promise<number> {
  return (await suite.env.jsm.streams.info('pipeline-engine')).state.messages;
}

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
