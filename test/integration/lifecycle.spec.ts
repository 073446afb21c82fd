import { Controller, Injectable, OnModuleInit } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { randomUUID } from 'node:crypto';
import { AckPolicy, connect } from 'nats';
import {
  ConveyorModuleOptions,
  Reconcile,
  ReconcileContext,
  Resource,
  deleteDriverConsumer,
} from '@conveyor-ci/nestjs';
import { MESSAGES_STREAM } from '@conveyor-ci/nestjs/internal';
import {
  ConveyorApiServer,
  ConveyorTestEnv,
  NatsServer,
  createConveyorStreams,
  freePort,
  makeResource,
  publishDriverMessage,
  waitForSettled,
  eventually,
  sleep,
} from '@conveyor-ci/testing';
import { startDriverApp, uniqueDriverName, useDriverApps } from '../support/driver-app';

const suite = useDriverApps();
const { start, expectSettled, closeAfterTest } = suite;

/** Counts reconciles per run id, so duplicates and losses both show. */
class RunCounter {
  readonly runs = new Map<string, number>();
  record(ctx: ReconcileContext): void {
    this.runs.set(ctx.runId, (this.runs.get(ctx.runId) ?? 0) + 1);
  }
  /** Run ids reconciled more than once, and how often. */
  duplicates(): [string, number][] {
    return [...this.runs].filter(([, n]) => n > 1);
  }
}

describe('startup', () => {
  it('finishes a slow async onModuleInit before the first dispatch, even with work already waiting', async () => {
    @Injectable()
    class Warmup implements OnModuleInit {
      ready = false;
      async onModuleInit() {
        await sleep(1000);
        this.ready = true;
      }
    }
    const seen: boolean[] = [];
    @Controller()
    class WarmDriver {
      constructor(private readonly warmup: Warmup) {}
      @Reconcile({ resource: 'warm' })
      run() {
        seen.push(this.warmup.ready);
        return { success: true };
      }
    }
    const name = uniqueDriverName();
    // The consumer exists before the app, so the events are waiting the moment it binds.
    await suite.env.jsm.consumers.add(MESSAGES_STREAM, {
      durable_name: name,
      filter_subjects: ['resources.warm', `drivers.${name}.resources.warm`],
      ack_policy: AckPolicy.Explicit,
    });
    const sent = await Promise.all(
      [1, 2, 3].map(() =>
        publishDriverMessage(suite.env.js, {
          resource: makeResource({ name: 'w', resource: 'warm', spec: {} }),
        }),
      ),
    );
    await start(name, [WarmDriver], { providers: [Warmup] });
    for (const s of sent) await suite.env.results.waitForRun(s.message.run_id);
    expect(seen).toEqual([true, true, true]);
  });

  it('waits for a NATS that starts later, not ready meanwhile, then consumes', async () => {
    const port = await freePort();
    @Controller()
    class LateDriver {
      @Reconcile({ resource: 'late' })
      run() {
        return { success: true, message: 'late but there' };
      }
    }
    const name = uniqueDriverName();
    const { app, strategy } = await startDriverApp({
      options: { driverName: name, servers: `nats://127.0.0.1:${port}` },
      controllers: [LateDriver],
    });
    closeAfterTest(() => app.close());
    await sleep(1500);
    expect([strategy.state, strategy.isReady]).toEqual(['connecting', false]);

    const late = await NatsServer.start({ port });
    closeAfterTest(() => late.stop());
    const lateEnv = await connectTo(late);
    closeAfterTest(() => lateEnv.close());
    await createConveyorStreams(lateEnv.jsm);
    await strategy.whenConsuming();
    expect(strategy.isReady).toBe(true);
    const sent = await publishDriverMessage(lateEnv.js, {
      resource: makeResource({ name: 'l', resource: 'late', spec: {} }),
    });
    await eventually(() => lateEnv.results.includes(sent.message.run_id), 'the result');
  });
});

/** A client on another server, collecting result run ids. */
async function connectTo(server: NatsServer) {
  const nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  const results: string[] = [];
  nc.subscribe('pipelines.driver.result', {
    callback: (_e, m) => results.push(JSON.parse(new TextDecoder().decode(m.data)).run_id),
  });
  return {
    nc,
    jsm: await nc.jetstreamManager(),
    js: nc.jetstream(),
    results,
    close: () => nc.close(),
  };
}

describe('NATS restarts', () => {
  it.each(['SIGTERM', 'SIGKILL'] as const)(
    'reconciles every event across a NATS restart mid-stream (%s), nothing pending at the end',
    async (signal) => {
      const own = await ConveyorTestEnv.start();
      closeAfterTest(() => own.stop());
      const counter = new RunCounter();
      @Controller()
      class SteadyDriver {
        @Reconcile({ resource: 'steady' })
        async run(@Ctx() ctx: ReconcileContext) {
          await sleep(20);
          counter.record(ctx);
          return { success: true };
        }
      }
      const name = uniqueDriverName();
      const { strategy } = await start(name, [SteadyDriver], {
        options: { driverName: name, servers: own.url, concurrency: 4, ackWaitMs: 3000 },
      });
      const total = 150;
      const runIds: string[] = [];
      for (let i = 0; i < total; i++) {
        const sent = await publishDriverMessage(own.js, {
          resource: makeResource({ name: `s${i}`, resource: 'steady', spec: {} }),
        });
        runIds.push(sent.message.run_id);
      }
      await eventually(() => counter.runs.size >= total / 3, 'a third of the events');
      await own.server.restart(signal);
      await eventually(() => runIds.every((id) => counter.runs.has(id)), 'every event', 60_000);
      await strategy.whenConsuming();
      const backlog = await waitForSettled(own.jsm, name, 30_000);
      expect({ pending: backlog.pending, ackPending: backlog.ackPending }).toEqual({
        pending: 0,
        ackPending: 0,
      });
      // Redeliveries after the restart are allowed (acks lost with the server), and counted here.
      const duplicates = counter.duplicates();
      expect(duplicates.length).toBeLessThanOrEqual(8);
      expect(strategy.isReady).toBe(true);
    },
  );
});

describe('durable consumer', () => {
  it('re-creates a deleted consumer after its last ack floor, without replaying history', async () => {
    const name = uniqueDriverName();
    // Another driver's consumer keeps the events in `messages` (interest retention): the history a
    // re-created DeliverAll consumer would replay.
    await suite.env.jsm.consumers.add(MESSAGES_STREAM, {
      durable_name: `${name}-observer`,
      filter_subject: 'resources.kept',
      ack_policy: AckPolicy.Explicit,
    });
    const counter = new RunCounter();
    @Controller()
    class KeptDriver {
      @Reconcile({ resource: 'kept' })
      run(@Ctx() ctx: ReconcileContext) {
        counter.record(ctx);
        return { success: true };
      }
    }
    const { strategy } = await start(name, [KeptDriver]);
    const publish = () =>
      publishDriverMessage(suite.env.js, {
        resource: makeResource({ name: 'k', resource: 'kept', spec: {} }),
      });
    for (let i = 0; i < 5; i++) await publish();
    await eventually(() => counter.runs.size === 5, 'the first five');
    // Let the transport sample the consumer's ack floor (every 5 s).
    await eventually(
      () => (strategy.consumerInfo?.ack_floor.stream_seq ?? 0) > 0 && strategy.inFlight === 0,
      'a sample',
    );
    await sleep(5500);
    expect(await deleteDriverConsumer(suite.env.jsm, name)).toBe(true);
    await eventually(async () => {
      try {
        return (await suite.env.jsm.consumers.info(MESSAGES_STREAM, name)).config.durable_name === name;
      } catch {
        return false;
      }
    }, 'the re-created consumer');
    await strategy.whenConsuming();
    for (let i = 0; i < 3; i++) await publish();
    await eventually(() => counter.runs.size === 8, 'the next three');
    await sleep(500);
    expect(counter.duplicates()).toEqual([]);
    expect(await deleteDriverConsumer(suite.env.jsm, `${name}-missing`)).toBe(false);
    await suite.env.jsm.consumers.delete(MESSAGES_STREAM, `${name}-observer`);
  });
});

describe('rolling deploys', () => {
  it('loses nothing with two instances of different handler sets on one durable, even when the old one restarts', async () => {
    const name = uniqueDriverName();
    const counter = new RunCounter();
    @Controller()
    class OldDriver {
      @Reconcile({ resource: 'widget' })
      widget(@Ctx() ctx: ReconcileContext) {
        counter.record(ctx);
        return { success: true };
      }
    }
    @Controller()
    class NewDriver {
      @Reconcile({ resource: 'widget' })
      widget(@Ctx() ctx: ReconcileContext) {
        counter.record(ctx);
        return { success: true };
      }
      @Reconcile({ resource: 'gadget' })
      gadget(@Ctx() ctx: ReconcileContext) {
        counter.record(ctx);
        return { success: true };
      }
    }
    const options = { driverName: name, servers: suite.env.url, concurrency: 4 };
    // The old replica pulls one at a time: a waiting pull request with batch left stays at the head
    // of the server's queue, so an idle replica pulling 4 can be handed the same no-handler event
    // again and again (8 times in a row, 40 s, seen in CI). With batch 1 its request is used up by
    // each delivery and re-queued behind the new replica's.
    const oldOptions = { ...options, concurrency: 1 };
    const old = await start(name, [OldDriver], { options: oldOptions });
    await start(name, [NewDriver], { options });
    // The old replica restarts mid-rollout: it must not drop the new replica's filters.
    await old.app.close();
    const oldAgain = await start(name, [OldDriver], { options: oldOptions });
    const filters = (await suite.env.jsm.consumers.info(MESSAGES_STREAM, name)).config.filter_subjects ?? [];
    expect([...filters].sort()).toEqual([
      `drivers.${name}.resources.gadget`,
      `drivers.${name}.resources.widget`,
      'resources.gadget',
      'resources.widget',
    ]);
    const sent = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        publishDriverMessage(suite.env.js, {
          driver: i % 2 ? name : undefined,
          resource: makeResource({ name: `r${i}`, resource: i % 4 < 2 ? 'widget' : 'gadget', spec: {} }),
        }),
      ),
    );
    await eventually(() => sent.every((s) => counter.runs.has(s.message.run_id)), 'every event', 40_000);
    expect(counter.duplicates()).toEqual([]);
    // Each event once, plus one delivery per nak of a gadget event by the old replica (each precedes
    // the delivery that handled it, so all are counted by now).
    await expectSettled(name, 40 + oldAgain.strategy.stats.settled.unrouted, 15_000);
    // Gadget events that reached the old replica were nak'd for the new one, never acked or terminated.
    expect(oldAgain.strategy.stats.settled['dead-lettered']).toBe(0);
  });
});

describe('stale-event guard', () => {
  /** A driver with the guard on against `api`, without client-side retries: the transport's nak-and-redeliver path is what is under test. */
  const guarded = (name: string, api: ConveyorApiServer, extra: Partial<ConveyorModuleOptions> = {}) => ({
    options: {
      driverName: name,
      servers: suite.env.url,
      apiUrl: api.url,
      client: { retries: 0 },
      staleEventGuard: true,
      backoff: { initialMs: 200, maxMs: 200 },
      ...extra,
    },
  });

  it('skips pipeline steps for deleted or replaced resources, and retries while the API is down', async () => {
    const api = await ConveyorApiServer.start();
    closeAfterTest(() => api.close());
    const ran: string[] = [];
    @Controller()
    class GuardedDriver {
      @Reconcile({ resource: 'pipeline' })
      run(@Payload() resource: Resource) {
        ran.push(resource.name);
        return { success: true };
      }
    }
    const name = uniqueDriverName();
    const { strategy } = await start(name, [GuardedDriver], guarded(name, api));
    const step = (resource: Resource) => publishDriverMessage(suite.env.js, { driver: name, resource });
    const current = api.put(makeResource({ name: 'current', resource: 'pipeline', spec: {} }));
    const replaced = makeResource({ name: 'replaced', resource: 'pipeline', spec: {} });
    api.put({ ...replaced, id: randomUUID() });
    const deleted = makeResource({ name: 'deleted', resource: 'pipeline', spec: {} });

    await step(replaced);
    await step(deleted);
    const fresh = await step(current);
    await suite.env.results.waitForRun(fresh.message.run_id);
    await eventually(() => strategy.stats.settled.stale === 2, 'two skipped steps');
    expect(ran).toEqual(['current']);

    api.failNext(503, 2);
    const later = await step(current);
    await suite.env.results.waitForRun(later.message.run_id);
    expect(ran).toEqual(['current', 'current']);
    expect(strategy.stats.settled.retried).toBe(2);
    expect(
      suite.env.results.results.filter((r) => ['replaced', 'deleted'].includes(r.event.resource.name)),
    ).toEqual([]);
    await expectSettled(name, 6); // three steps, then one retried twice while the API was down
  });

  it('settles a step as failed once the stale-event lookup has failed maxAttempts times', async () => {
    const api = await ConveyorApiServer.start();
    closeAfterTest(() => api.close());
    @Controller()
    class NeverRuns {
      @Reconcile({ resource: 'pipeline' })
      run() {
        throw new Error('must not run: the resource could not be checked');
      }
    }
    const name = uniqueDriverName();
    await start(name, [NeverRuns], guarded(name, api, { maxAttempts: 2 }));
    const resource = api.put(makeResource({ name: 'unreachable', resource: 'pipeline', spec: {} }));
    api.failNext(503, 10);
    const sent = await publishDriverMessage(suite.env.js, { driver: name, resource });
    const result = await suite.env.results.waitForRun(sent.message.run_id);
    expect(result.driverresult).toMatchObject({
      success: false,
      message: expect.stringMatching(
        /^gave up after 2 attempts: stale-event check failed: GET \/resources\/pipeline\/unreachable -> 503/,
      ),
    });
    expect(api.requests.filter((r) => r === 'GET /resources/pipeline/unreachable')).toHaveLength(2);
  });
});
