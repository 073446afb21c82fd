import {
  ArgumentsHost,
  CallHandler,
  CanActivate,
  Catch,
  Controller,
  ExceptionFilter,
  ExecutionContext,
  Injectable,
  NestInterceptor,
  UseGuards,
} from '@nestjs/common';
import { Ctx, EventPattern, Payload, Transport } from '@nestjs/microservices';
import { AckPolicy, DeliverPolicy, nanos } from 'nats';
import { tap } from 'rxjs';
import { Reconcile, ReconcileContext, Resource, isConveyorContext } from '@conveyor-ci/nestjs';
import { MESSAGES_STREAM } from '@conveyor-ci/nestjs/internal';
import { makeResource, publishDriverMessage } from '@conveyor-ci/testing';
import { startDriverApp, uniqueDriverName, useDriverApps } from '../support/driver-app';

const suite = useDriverApps();
const { start, expectSettled } = suite;

@Controller()
class EchoDriver {
  static calls: { resource: Resource; ctx: ReconcileContext }[] = [];

  @Reconcile({ resource: 'widget' })
  reconcile(@Payload() resource: Resource<{ fail?: string }>, @Ctx() ctx: ReconcileContext) {
    EchoDriver.calls.push({ resource, ctx });
    if (resource.spec?.fail) throw new Error(resource.spec.fail);
    return {
      success: true,
      message: `reconciled ${resource.name}`,
      data: { event: ctx.event, step: ctx.isPipelineStep },
    };
  }
}

describe('consumer binding', () => {
  it('creates a durable pull consumer with both filter subjects and the configured ack settings', async () => {
    const name = uniqueDriverName();
    await start(name, [EchoDriver], {
      options: { driverName: name, servers: suite.env.url, maxAckPending: 17, ackWaitMs: 12_000 },
    });
    const info = await suite.env.jsm.consumers.info(MESSAGES_STREAM, name);
    expect(info.config).toMatchObject({
      durable_name: name,
      name,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      max_ack_pending: 17,
      ack_wait: nanos(12_000),
    });
    expect(info.config.deliver_subject).toBeUndefined();
    expect([...(info.config.filter_subjects ?? [])].sort()).toEqual([
      `drivers.${name}.resources.widget`,
      'resources.widget',
    ]);
  });

  it.each([
    ['merge' as const, ['old', 'widget']],
    ['replace' as const, ['widget']],
  ])(
    'changes only the filters of an existing consumer (consumerFilters %s) and keeps its other settings',
    async (consumerFilters, resources) => {
      const name = uniqueDriverName();
      await suite.env.jsm.consumers.add(MESSAGES_STREAM, {
        durable_name: name,
        name,
        filter_subjects: ['resources.old', `drivers.${name}.resources.old`],
        ack_policy: AckPolicy.Explicit,
        max_ack_pending: 42,
        ack_wait: nanos(7000),
        max_deliver: 9,
        description: 'made by an operator',
      });
      await start(name, [EchoDriver], { options: { consumerFilters } });
      const info = await suite.env.jsm.consumers.info(MESSAGES_STREAM, name);
      expect([...(info.config.filter_subjects ?? [])].sort()).toEqual(
        resources
          .flatMap((r) => [`drivers.${name}.resources.${r}`])
          .concat(resources.map((r) => `resources.${r}`)),
      );
      expect(info.config).toMatchObject({
        max_ack_pending: 42,
        ack_wait: nanos(7000),
        max_deliver: 9,
        description: 'made by an operator',
      });
    },
  );

  it('applies explicitly configured maxAckPending to an existing consumer', async () => {
    const name = uniqueDriverName();
    await suite.env.jsm.consumers.add(MESSAGES_STREAM, {
      durable_name: name,
      filter_subjects: ['resources.widget', `drivers.${name}.resources.widget`],
      ack_policy: AckPolicy.Explicit,
      max_ack_pending: 1,
    });
    await start(name, [EchoDriver], {
      options: { driverName: name, servers: suite.env.url, maxAckPending: 64 },
    });
    expect((await suite.env.jsm.consumers.info(MESSAGES_STREAM, name)).config.max_ack_pending).toBe(64);
  });
});

describe('dispatch and results', () => {
  beforeEach(() => (EchoDriver.calls = []));

  it('reconciles a pipeline step and a direct resource event, one result each, and leaves nothing pending', async () => {
    const name = uniqueDriverName();
    await start(name, [EchoDriver]);
    const step = await publishDriverMessage(suite.env.js, {
      driver: name,
      event: 'process',
      resource: makeResource({ name: 'w1', resource: 'widget', pipeline: 'p1', spec: { a: '<&>' } }),
    });
    const direct = await publishDriverMessage(suite.env.js, {
      resource: makeResource({ name: 'w2', resource: 'widget', spec: {} }),
    });

    await suite.env.results.waitForRun(step.message.run_id);
    await suite.env.results.waitForRun(direct.message.run_id);
    const [stepResult] = suite.env.results.forRun(step.message.run_id);
    expect(stepResult).toEqual({
      event: 'driver.result',
      run_id: step.message.run_id,
      resource: JSON.parse(step.message.payload as string),
      driverresult: {
        success: true,
        message: 'reconciled w1',
        data: { event: 'process', step: true },
        driver: name,
      },
    });
    const raw = suite.env.results.results.find((r) => r.event.run_id === step.message.run_id)!;
    expect(raw.raw).toContain('\\u003c\\u0026\\u003e'); // Go-escaped like a Go driver's bytes
    expect(raw.msgId).toBe(`${step.message.run_id}:${name}:${step.message.id}`);
    expect(suite.env.results.forRun(direct.message.run_id)).toEqual([
      expect.objectContaining({
        driverresult: {
          success: true,
          message: 'reconciled w2',
          data: { event: 'create', step: false },
          driver: name,
        },
      }),
    ]);
    const ctx = EchoDriver.calls.find((c) => c.ctx.runId === step.message.run_id)!.ctx;
    expect(ctx).toMatchObject({
      event: 'process',
      messageId: step.message.id,
      subject: `drivers.${name}.resources.widget`,
      resourceType: 'widget',
      deliveryCount: 1,
      streamSequence: step.seq,
      driverName: name,
      payload: step.message.payload,
    });
    expect(ctx.signal.aborted).toBe(false);
    await expectSettled(name, 2);
    expect(suite.env.results.forRun(step.message.run_id)).toHaveLength(1);
    expect(suite.env.results.forRun(direct.message.run_id)).toHaveLength(1);
  });

  it('turns a thrown error into a failure result with the original message, despite a global interceptor and an HTTP-only filter', async () => {
    @Injectable()
    class TimingInterceptor implements NestInterceptor {
      static seen = 0;
      intercept(_ctx: ExecutionContext, next: CallHandler) {
        return next.handle().pipe(tap({ error: () => (TimingInterceptor.seen += 1) }));
      }
    }
    @Catch()
    class HttpOnlyFilter implements ExceptionFilter {
      catch(_exception: unknown, host: ArgumentsHost) {
        // Written for HTTP only: in an RPC context there is no response object, so this throws.
        host.switchToHttp().getResponse().status(500).json({ oops: true });
      }
    }
    const name = uniqueDriverName();
    await start(name, [EchoDriver], {
      configure: (app) => {
        app.useGlobalInterceptors(new TimingInterceptor());
        app.useGlobalFilters(new HttpOnlyFilter());
      },
    });
    const sent = await publishDriverMessage(suite.env.js, {
      driver: name,
      resource: makeResource({ name: 'w', resource: 'widget', spec: { fail: 'disk full' } }),
    });
    await suite.env.results.waitForRun(sent.message.run_id);
    expect(suite.env.results.forRun(sent.message.run_id)).toEqual([
      expect.objectContaining({
        driverresult: { success: false, message: 'disk full', data: null, driver: name },
      }),
    ]);
    expect(TimingInterceptor.seen).toBe(1);
    await expectSettled(name, 1); // a failure result is final: acked, not retried
  });

  it('aborts a run past reconcileTimeoutMs through ctx.signal and reports it timed out', async () => {
    @Controller()
    class SlowDriver {
      static abortedWith?: unknown;
      @Reconcile({ resource: 'slow' })
      async reconcile(@Ctx() ctx: ReconcileContext) {
        await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
        SlowDriver.abortedWith = ctx.signal.reason;
        throw new Error('stopped because aborted');
      }
    }
    const name = uniqueDriverName();
    await start(name, [SlowDriver], {
      options: { driverName: name, servers: suite.env.url, reconcileTimeoutMs: 300 },
    });
    const sent = await publishDriverMessage(suite.env.js, {
      resource: makeResource({ name: 's', resource: 'slow', spec: {} }),
    });
    const result = await suite.env.results.waitForRun(sent.message.run_id);
    expect(result.driverresult).toEqual({
      success: false,
      message: 'timed out after 300 ms',
      data: null,
      driver: name,
    });
    expect(String(SlowDriver.abortedWith)).toMatch(/reconcile timed out after 300 ms/);
    await expectSettled(name, 1); // acked with the timed-out result, not redelivered
  });

  it('reports a guard denial as a failure result and acks the message', async () => {
    class DenyAll implements CanActivate {
      canActivate(context: ExecutionContext) {
        return !isConveyorContext(context);
      }
    }
    @Controller()
    class GuardedDriver {
      static ran = 0;
      @UseGuards(DenyAll)
      @Reconcile({ resource: 'gadget' })
      reconcile() {
        GuardedDriver.ran += 1;
        return { success: true };
      }
    }
    const name = uniqueDriverName();
    await start(name, [GuardedDriver]);
    const sent = await publishDriverMessage(suite.env.js, {
      resource: makeResource({ name: 'g', resource: 'gadget', spec: {} }),
    });
    await suite.env.results.waitForRun(sent.message.run_id);
    expect(suite.env.results.forRun(sent.message.run_id)).toEqual([
      expect.objectContaining({
        driverresult: { success: false, message: 'Forbidden resource', data: null, driver: name },
      }),
    ]);
    expect(GuardedDriver.ran).toBe(0);
    await expectSettled(name, 1);
  });

  it('does not register Conveyor handlers on a second microservice transport in the same app', async () => {
    @Controller()
    class MixedController {
      static coreCalls = 0;
      @Reconcile({ resource: 'mixed' })
      reconcile() {
        return { success: true };
      }
      @EventPattern('plain.core.event', Transport.NATS)
      onCore() {
        MixedController.coreCalls += 1;
      }
    }
    const name = uniqueDriverName();
    let other: any;
    await start(name, [MixedController], {
      configure: (app) => {
        other = app.connectMicroservice({ transport: Transport.NATS, options: { servers: [suite.env.url] } });
      },
    });
    const coreServer = other.serverInstance;
    const patterns = [...coreServer.getHandlers().keys()];
    expect(patterns).toEqual(['plain.core.event']);
    // Nest's NATS server subscribes after its own connect; a flush of its connection is the point
    // where the server holds those subscriptions (publishing earlier was a CI flake).
    const subscribed = Date.now() + 5000;
    while (!coreServer.natsClient && Date.now() < subscribed) await new Promise((r) => setTimeout(r, 25));
    await coreServer.natsClient.flush();
    // And behaviourally: publishing on the Conveyor handler's Nest pattern reaches nothing on core NATS.
    suite.env.nc.publish(`conveyor.reconcile.mixed.MixedController.reconcile`, '{}');
    suite.env.nc.publish('plain.core.event', JSON.stringify({ pattern: 'plain.core.event', data: {} }));
    const deadline = Date.now() + 5000;
    while (MixedController.coreCalls === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 25));
    expect(MixedController.coreCalls).toBe(1);
  });
});

describe('startup checks', () => {
  it('fails startup on duplicate (resource, event) handlers, naming both', async () => {
    @Controller()
    class First {
      @Reconcile({ resource: 'dup', events: ['create', 'process'] })
      a() {
        return { success: true };
      }
    }
    @Controller()
    class Second {
      @Reconcile({ resource: 'dup', events: ['process'] })
      b() {
        return { success: true };
      }
    }
    const name = uniqueDriverName();
    await expect(
      startDriverApp({ options: { driverName: name, servers: suite.env.url }, controllers: [First, Second] }),
    ).rejects.toThrow(
      'Duplicate @Reconcile handlers for resource "dup" and event(s) "process": First.a and Second.b',
    );
  });

  it('allows two handlers of one resource with disjoint events, and routes by event', async () => {
    @Controller()
    class Split {
      @Reconcile({ resource: 'split', events: ['create'] })
      create() {
        return { success: true, message: 'create handler' };
      }
      @Reconcile({ resource: 'split', events: ['process'] })
      process() {
        return { success: true, message: 'process handler' };
      }
    }
    const name = uniqueDriverName();
    await start(name, [Split]);
    const a = await publishDriverMessage(suite.env.js, {
      driver: name,
      event: 'process',
      resource: makeResource({ name: 's', resource: 'split', spec: {} }),
    });
    const b = await publishDriverMessage(suite.env.js, {
      driver: name,
      event: 'create',
      resource: makeResource({ name: 's', resource: 'split', spec: {} }),
    });
    await suite.env.results.waitForRun(a.message.run_id);
    await suite.env.results.waitForRun(b.message.run_id);
    expect(suite.env.results.forRun(a.message.run_id)[0].driverresult.message).toBe('process handler');
    expect(suite.env.results.forRun(b.message.run_id)[0].driverresult.message).toBe('create handler');
  });
});
