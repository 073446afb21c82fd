import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { randomUUID } from 'node:crypto';
import { RetentionPolicy } from 'nats';
import {
  DEAD_LETTER_HEADERS,
  DeadLetterRecord,
  Reconcile,
  ReconcileContext,
  Resource,
  RetryableError,
} from '@conveyor-ci/nestjs';
import { MESSAGES_STREAM } from '@conveyor-ci/nestjs/internal';
import { NatsFaultProxy, makeResource, publishDriverMessage, eventually, sleep } from '@conveyor-ci/testing';
import { encodeGoJson } from '../../libs/conveyor/src/protocol';
import { uniqueDriverName, useDriverApps } from '../support/driver-app';

const suite = useDriverApps();
const { start, expectSettled, closeAfterTest } = suite;

function publish(resource: string, spec: unknown = {}, driver?: string) {
  return publishDriverMessage(suite.env.js, {
    driver,
    resource: makeResource({ name: `${resource}-${randomUUID().slice(0, 8)}`, resource, spec }),
  });
}

describe('retries', () => {
  it('retries a transient error with growing gaps, then succeeds with one result', async () => {
    const deliveries: number[] = [];
    @Controller()
    class FlakyDriver {
      @Reconcile({ resource: 'flaky' })
      run(@Ctx() ctx: ReconcileContext) {
        deliveries.push(Date.now());
        if (ctx.deliveryCount < 3) throw new RetryableError('registry answered 503');
        return { success: true, message: `ok on attempt ${ctx.deliveryCount}` };
      }
    }
    const name = uniqueDriverName();
    await start(name, [FlakyDriver], {
      options: {
        maxAttempts: 4,
        backoff: { initialMs: 400, maxMs: 5000 },
      },
    });
    const sent = await publish('flaky');
    const result = await suite.env.results.waitForRun(sent.message.run_id);
    expect(result.driverresult).toMatchObject({ success: true, message: 'ok on attempt 3' });
    const [gap1, gap2] = [deliveries[1] - deliveries[0], deliveries[2] - deliveries[1]];
    // 400 ms then 800 ms, each ±20 % jitter.
    expect(gap1).toBeGreaterThanOrEqual(320);
    expect(gap2).toBeGreaterThanOrEqual(640);
    expect(gap2).toBeGreaterThan(gap1);
    expect(deliveries).toHaveLength(3);
    await expectSettled(name, 3); // two retries, then the success
    expect(suite.env.results.forRun(sent.message.run_id)).toHaveLength(1);
  });

  it('gives exactly one failure result after maxAttempts for a permanent retryable error', async () => {
    let calls = 0;
    @Controller()
    class BrokenDriver {
      @Reconcile({ resource: 'broken', maxAttempts: 3 })
      run(@Ctx() ctx: ReconcileContext) {
        calls += 1;
        ctx.retry(undefined, `still broken (attempt ${ctx.deliveryCount}, last: ${ctx.isLastAttempt})`);
        return { success: true };
      }
    }
    const name = uniqueDriverName();
    const { strategy } = await start(name, [BrokenDriver], {
      options: {
        maxAttempts: 10,
        backoff: { initialMs: 100, maxMs: 200 },
      },
    });
    const sent = await publish('broken');
    const result = await suite.env.results.waitForRun(sent.message.run_id);
    expect(result.driverresult).toMatchObject({
      success: false,
      message: 'gave up after 3 attempts: still broken (attempt 3, last: true)',
    });
    await expectSettled(name, 3); // maxAttempts 3 of the handler, not the module's 10
    await sleep(500); // nothing comes back after the give-up
    expect(calls).toBe(3);
    expect(suite.env.results.forRun(sent.message.run_id)).toHaveLength(1);
    expect(strategy.stats.settled).toMatchObject({ retried: 2, 'gave-up': 1 });
  });
});

describe('heartbeats and timeouts', () => {
  it('runs a job three times longer than AckWait once, without redelivery', async () => {
    let calls = 0;
    @Controller()
    class LongDriver {
      @Reconcile({ resource: 'long' })
      async run() {
        calls += 1;
        await sleep(6000);
        return { success: true, message: 'long run done' };
      }
    }
    const name = uniqueDriverName();
    // Concurrency 2 keeps a pull request waiting, so an expired AckWait would be redelivered at once.
    await start(name, [LongDriver], {
      options: { ackWaitMs: 2000, concurrency: 2 },
    });
    const sent = await publish('long');
    const result = await suite.env.results.waitForRun(sent.message.run_id, 20_000);
    expect(result.driverresult.message).toBe('long run done');
    expect(calls).toBe(1);
    await expectSettled(name, 1);
  });

  it('reports a timeout at once, and frees the slot only when the handler that ignored the abort settles', async () => {
    const events: string[] = [];
    let stubbornSettledAt = 0;
    @Controller()
    class StubbornDriver {
      @Reconcile({ resource: 'stubborn', timeoutMs: 300 })
      async stubborn(@Ctx() ctx: ReconcileContext) {
        events.push(`stubborn start, aborted=${ctx.signal.aborted}`);
        await sleep(1500); // ignores ctx.signal
        stubbornSettledAt = Date.now();
        events.push('stubborn settled');
        return { success: true };
      }
      @Reconcile({ resource: 'polite' })
      polite() {
        events.push('polite start');
        return { success: true, startedAt: Date.now() };
      }
    }
    const name = uniqueDriverName();
    const { strategy } = await start(name, [StubbornDriver], {
      options: { concurrency: 1 },
    });
    const first = await publish('stubborn');
    await waitForStarted(() => events.length > 0);
    const second = await publish('polite');
    const timedOut = await suite.env.results.waitForRun(first.message.run_id);
    expect(timedOut.driverresult).toMatchObject({ success: false, message: 'timed out after 300 ms' });
    // The result is out while the handler still holds the only slot.
    expect(events).toEqual(['stubborn start, aborted=false']);
    expect(strategy.stats.overdue).toBe(1);
    await suite.env.results.waitForRun(second.message.run_id);
    expect(events).toEqual(['stubborn start, aborted=false', 'stubborn settled', 'polite start']);
    expect(stubbornSettledAt).toBeGreaterThan(0);
    expect(strategy.stats.overdue).toBe(0);
    expect(suite.env.results.forRun(first.message.run_id)).toHaveLength(1);
    await expectSettled(name, 2); // the timed-out run is acked with its failure result: no redelivery
  });
});

async function waitForStarted(check: () => boolean): Promise<void> {
  await eventually(check, 'the handler to start');
}

describe('concurrency', () => {
  it('runs exactly `concurrency` handlers at once and never a fifth', async () => {
    let active = 0;
    let peak = 0;
    @Controller()
    class BusyDriver {
      @Reconcile({ resource: 'busy' })
      async run() {
        active += 1;
        peak = Math.max(peak, active);
        await sleep(400);
        active -= 1;
        return { success: true };
      }
    }
    const name = uniqueDriverName();
    await start(name, [BusyDriver], { options: { concurrency: 4 } });
    const sent = await Promise.all(Array.from({ length: 10 }, () => publish('busy')));
    for (const s of sent) await suite.env.results.waitForRun(s.message.run_id);
    expect(peak).toBe(4);
    await expectSettled(name, 10);
  });

  it("keeps a handler's own concurrency within the instance's, heartbeating messages that wait for it", async () => {
    const active = { limited: 0, total: 0 };
    const peak = { limited: 0, total: 0 };
    const work = async (kind: 'limited' | 'free', ms: number) => {
      active.total += 1;
      if (kind === 'limited') active.limited += 1;
      peak.limited = Math.max(peak.limited, active.limited);
      peak.total = Math.max(peak.total, active.total);
      await sleep(ms);
      active.total -= 1;
      if (kind === 'limited') active.limited -= 1;
      return { success: true };
    };
    @Controller()
    class MixedDriver {
      @Reconcile({ resource: 'limited', concurrency: 1 })
      limited() {
        return work('limited', 800);
      }
      @Reconcile({ resource: 'free' })
      free() {
        return work('free', 100);
      }
    }
    const name = uniqueDriverName();
    await start(name, [MixedDriver], {
      options: { concurrency: 4, ackWaitMs: 1000 },
    });
    // The third limited message waits 1.6 s for its handler slot, past AckWait; a free instance slot
    // keeps a pull request open, so without heartbeats it would be redelivered meanwhile.
    const sent = [
      ...(await Promise.all(Array.from({ length: 3 }, () => publish('limited')))),
      ...(await Promise.all(Array.from({ length: 3 }, () => publish('free')))),
    ];
    for (const s of sent) await suite.env.results.waitForRun(s.message.run_id);
    expect(peak.limited).toBe(1);
    expect(peak.total).toBeLessThanOrEqual(4);
    expect(peak.total).toBeGreaterThanOrEqual(2); // the free handler ran beside the limited one
    await expectSettled(name, 6);
  });
});

describe('poison messages and dead letters', () => {
  it('dead-letters undecodable messages (hook and stored subject), terms them, and goes on', async () => {
    const name = uniqueDriverName();
    const dlqSubject = `deadletter.${name}`;
    await suite.env.jsm.streams.add({
      name: `dlq-${name}`,
      subjects: [dlqSubject],
      retention: RetentionPolicy.Limits,
    });
    const records: DeadLetterRecord[] = [];
    let reconciled = 0;
    @Controller()
    class WidgetDriver {
      @Reconcile({ resource: 'widget' })
      run() {
        reconciled += 1;
        return { success: true, message: 'good one' };
      }
    }
    await start(name, [WidgetDriver], {
      options: {
        deadLetterSubject: dlqSubject,
        onDeadLetter: (record) => void records.push(record),
      },
    });
    const notJson = await suite.env.js.publish('resources.widget', new TextEncoder().encode('{not json'));
    const badIdRun = randomUUID();
    const resource = makeResource({ name: 'w-bad-id', resource: 'widget', spec: {} });
    const badIdBytes = encodeGoJson({
      event: 'create',
      payload: encodeGoJson(resource),
      id: 'has a space',
      run_id: badIdRun,
    });
    const badId = await suite.env.js.publish(
      `drivers.${name}.resources.widget`,
      new TextEncoder().encode(badIdBytes),
    );
    const good = await publish('widget');

    expect((await suite.env.results.waitForRun(good.message.run_id)).driverresult.message).toBe('good one');
    // Its run id and resource were readable: the pipeline learns it failed instead of hanging.
    expect((await suite.env.results.waitForRun(badIdRun)).driverresult).toMatchObject({
      success: false,
      message: 'undecodable message: message "id" is missing or not a printable string',
    });
    await expectSettled(name, 3); // both poison messages termed on their first delivery
    expect(reconciled).toBe(1);
    expect(records.map((r) => [r.streamSequence, r.subject, r.runId, r.deliveryCount])).toEqual([
      [notJson.seq, 'resources.widget', undefined, 1],
      [badId.seq, `drivers.${name}.resources.widget`, badIdRun, 1],
    ]);
    expect(records[0].reason).toMatch(/^undecodable: message is not valid JSON/);
    expect(new TextDecoder().decode(records[0].payload)).toBe('{not json');

    const stored = await suite.env.jsm.streams.getMessage(`dlq-${name}`, { seq: 1 });
    expect(new TextDecoder().decode(stored.data)).toBe('{not json');
    expect(stored.header.get(DEAD_LETTER_HEADERS.streamSequence)).toBe(String(notJson.seq));
    expect(stored.header.get(DEAD_LETTER_HEADERS.subject)).toBe('resources.widget');
    expect(stored.header.get(DEAD_LETTER_HEADERS.reason)).toMatch(/message is not valid JSON/);
    expect((await suite.env.jsm.streams.info(`dlq-${name}`)).state.messages).toBe(2);
  });

  it('keeps a poison message when its dead-letter record cannot be stored, and records it on a later delivery', async () => {
    const name = uniqueDriverName();
    const seen: number[] = [];
    @Controller()
    class WidgetDriver {
      @Reconcile({ resource: 'widget' })
      run() {
        return { success: true };
      }
    }
    await start(name, [WidgetDriver], {
      options: {
        backoff: { initialMs: 100, maxMs: 100 },
        onDeadLetter: (record) => {
          seen.push(record.deliveryCount);
          if (record.deliveryCount === 1) throw new Error('audit database down');
        },
      },
    });
    await suite.env.js.publish(`drivers.${name}.resources.widget`, new TextEncoder().encode('[]'));
    await eventually(() => seen.length === 2, 'the second dead-letter attempt');
    expect(seen).toEqual([1, 2]);
    await expectSettled(name, 2); // nak'd when its record failed, termed once the second was stored
  });
});

describe('routing', () => {
  it('naks a message nobody here handles, and another instance that handles it processes it', async () => {
    const name = uniqueDriverName();
    @Controller()
    class OldDriver {
      @Reconcile({ resource: 'widget' })
      run() {
        return { success: true };
      }
    }
    @Controller()
    class NewDriver {
      @Reconcile({ resource: 'widget' })
      widget() {
        return { success: true };
      }
      @Reconcile({ resource: 'gadget' })
      gadget() {
        return { success: true, message: 'gadget by the new instance' };
      }
    }
    const old = await start(name, [OldDriver]);
    // A newer replica widened the filters while this one still runs the old handler set.
    await suite.env.jsm.consumers.update(MESSAGES_STREAM, name, {
      filter_subjects: ['resources.widget', `drivers.${name}.resources.widget`, 'resources.gadget'],
    });
    const sent = await publish('gadget');
    await eventually(() => old.strategy.stats.settled.unrouted >= 1, 'the old instance to nak it');
    expect(suite.env.results.forRun(sent.message.run_id)).toHaveLength(0);
    await old.app.close();
    await start(name, [NewDriver]);
    const result = await suite.env.results.waitForRun(sent.message.run_id);
    expect(result.driverresult.message).toBe('gadget by the new instance');
    expect(suite.env.results.forRun(sent.message.run_id)).toHaveLength(1);
    // One to the old instance, which naks it for 5 s (UNROUTED_NAK_DELAY_MS) and is closed at once, so
    // the redelivery after that delay goes to the new one.
    await expectSettled(name, 2);
  });
});

describe('result publishing', () => {
  it('stores a result once when its PubAck was lost and the publish retried (Nats-Msg-Id)', async () => {
    const proxy = await NatsFaultProxy.start(suite.env.server.port);
    closeAfterTest(() => proxy.close());
    const lost = proxy.drop((m) => m.body.includes('"stream":"pipeline-engine"'));
    @Controller()
    class WidgetDriver {
      @Reconcile({ resource: 'widget' })
      run(@Payload() resource: Resource) {
        return { success: true, message: `built ${resource.name}` };
      }
    }
    const name = uniqueDriverName();
    await start(name, [WidgetDriver], { options: { driverName: name, servers: proxy.url } });
    const before = (await suite.env.jsm.streams.info('pipeline-engine')).state.messages;
    const sent = await publish('widget');
    await eventually(
      () => suite.env.results.results.filter((r) => r.event.run_id === sent.message.run_id).length === 2,
      'the retried publish',
      20_000,
    );
    expect(lost.dropped).toHaveLength(1);
    const copies = suite.env.results.results.filter((r) => r.event.run_id === sent.message.run_id);
    expect(copies[0].msgId).toBe(`${sent.message.run_id}:${name}:${sent.message.id}`);
    expect(copies[1].msgId).toBe(copies[0].msgId);
    await expectSettled(name, 1); // the publish is retried within the one delivery, not redelivered
    expect((await suite.env.jsm.streams.info('pipeline-engine')).state.messages).toBe(before + 1);
  });
});
