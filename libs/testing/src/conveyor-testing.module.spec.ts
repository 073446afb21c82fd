import {
  ArgumentsHost,
  BadRequestException,
  CallHandler,
  CanActivate,
  Catch,
  Controller,
  ExceptionFilter,
  ExecutionContext,
  Injectable,
  Module,
  NestInterceptor,
  PipeTransform,
  UseFilters,
  UseGuards,
  UseInterceptors,
} from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import { map, of } from 'rxjs';
import {
  Reconcile,
  ReconcileContext,
  Resource,
  RetryableError,
  isConveyorContext,
} from '@conveyor-ci/nestjs';
import { CONVEYOR_CONFIG, ConveyorConfig, ResultRefusedError } from '@conveyor-ci/nestjs/internal';
import { PUBLISH_GRACE_MS } from '@conveyor-ci/nestjs/run/message-run';
import { ConveyorTestingModule } from './conveyor-testing.module';

class QuotaError extends Error {}

@Catch(QuotaError)
class QuotaFilter implements ExceptionFilter {
  catch(exception: QuotaError, _host: ArgumentsHost) {
    return of({ success: false, message: `quota: ${exception.message}` });
  }
}

class DenyConveyor implements CanActivate {
  canActivate(context: ExecutionContext) {
    return !isConveyorContext(context);
  }
}

class RequireSteps implements PipeTransform {
  transform(value: Resource<{ steps?: unknown }>) {
    if (!Array.isArray(value?.spec?.steps)) throw new BadRequestException('spec.steps must be an array');
    return value;
  }
}

@Injectable()
class Shout implements NestInterceptor {
  intercept(_ctx: ExecutionContext, next: CallHandler) {
    return next.handle().pipe(map((r: { message: string }) => ({ ...r, message: r.message.toUpperCase() })));
  }
}

type Spec = { mode?: string; steps?: unknown };

@Controller()
class TestDriver {
  static seenSignal?: AbortSignal;

  @Reconcile({ resource: 'widget', events: ['create', 'process'], maxAttempts: 3 })
  widget(@Payload() resource: Resource<Spec>, @Ctx() ctx: ReconcileContext) {
    resource.name = 'mutated by the handler';
    switch (resource.spec.mode) {
      case 'throw':
        throw new Error('disk full');
      case 'retryable':
        throw new RetryableError('registry busy');
      case 'retry':
        ctx.retry(250, 'node draining');
        return { success: true };
      case 'quota':
        throw new QuotaError('3 builds max');
      default:
        return {
          success: true,
          message: `ok ${ctx.event} #${ctx.deliveryCount}`,
          data: { step: ctx.isPipelineStep },
        };
    }
  }

  @UseGuards(DenyConveyor)
  @Reconcile({ resource: 'guarded' })
  guarded() {
    return { success: true };
  }

  @Reconcile({ resource: 'piped' })
  piped(@Payload(RequireSteps) resource: Resource<Spec>) {
    return { success: true, message: `${(resource.spec.steps as unknown[]).length} steps` };
  }

  @UseInterceptors(Shout)
  @Reconcile({ resource: 'loud' })
  loud() {
    return { success: true, message: 'quiet' };
  }

  @Reconcile({ resource: 'slow', timeoutMs: 50 })
  async slow(@Ctx() ctx: ReconcileContext) {
    TestDriver.seenSignal = ctx.signal;
    await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
    return { success: true };
  }
}

@UseFilters(QuotaFilter)
@Controller()
class FilteredDriver {
  @Reconcile({ resource: 'quota' })
  quota() {
    throw new QuotaError('3 builds max');
  }
}

const widget = (spec: Spec = {}, resource = 'widget'): Resource<Spec> => ({
  id: 'id-1',
  name: 'w1',
  pipeline: 'p1',
  resource,
  metadata: { version: '1' },
  spec,
});

describe('ConveyorTestingModule', () => {
  let testing: ConveyorTestingModule;

  beforeAll(async () => {
    testing = await ConveyorTestingModule.create({
      controllers: [TestDriver, FilteredDriver],
      options: { driverName: 'unit-driver', backoff: (n) => n * 1000 },
      logger: false,
    });
  });
  afterAll(() => testing.close());

  it('returns the exact result the transport would publish, with the resource as received', async () => {
    const run = await testing.reconcile(widget(), { event: 'process', runId: 'run-1' });
    expect(run.settlement).toMatchObject({ kind: 'succeeded', action: 'ack' });
    expect(run.result).toEqual({
      event: 'driver.result',
      run_id: 'run-1',
      resource: widget(),
      driverresult: { success: true, message: 'ok process #1', data: { step: true }, driver: 'unit-driver' },
    });
  });

  it('turns a thrown error into a failure result with the original message', async () => {
    const run = await testing.reconcile(widget({ mode: 'throw' }));
    expect(run.settlement).toMatchObject({ kind: 'failed', action: 'ack' });
    expect(run.result?.driverresult).toEqual({
      success: false,
      message: 'disk full',
      data: null,
      driver: 'unit-driver',
    });
  });

  it('naks a RetryableError with the backoff delay, and gives up with a result at the last attempt', async () => {
    const first = await testing.reconcile(widget({ mode: 'retryable' }), { deliveryCount: 2 });
    expect(first.settlement).toMatchObject({ kind: 'retried', action: 'nak', delayMs: 2000 });
    expect(first.result).toBeUndefined();
    const last = await testing.reconcile(widget({ mode: 'retryable' }), { deliveryCount: 3 });
    expect(last.settlement).toMatchObject({ kind: 'gave-up', action: 'ack' });
    expect(last.result?.driverresult.message).toBe('gave up after 3 attempts: registry busy');
  });

  it('naks after ctx.retry(ms) with that delay and ignores the return value', async () => {
    const run = await testing.reconcile(widget({ mode: 'retry' }));
    expect(run.settlement).toMatchObject({ kind: 'retried', action: 'nak', delayMs: 250 });
    expect(run.ctx?.isLastAttempt).toBe(false);
  });

  it('reports a guard denial as a failure result', async () => {
    const run = await testing.reconcile(widget({}, 'guarded'));
    expect(run.settlement).toMatchObject({ kind: 'failed', action: 'ack' });
    expect(run.result?.driverresult.message).toBe('Forbidden resource');
  });

  it('reports a failing pipe as a failure result with the pipe message', async () => {
    const bad = await testing.reconcile(widget({ steps: 'nope' }, 'piped'));
    expect(bad.result?.driverresult).toMatchObject({
      success: false,
      message: 'spec.steps must be an array',
    });
    const good = await testing.reconcile(widget({ steps: [1, 2] }, 'piped'));
    expect(good.result?.driverresult).toMatchObject({ success: true, message: '2 steps' });
  });

  it('publishes the value an exception filter maps an error to', async () => {
    const run = await testing.reconcile(widget({}, 'quota'));
    expect(run.outcome.kind).toBe('threw');
    expect(run.result?.driverresult).toMatchObject({ success: false, message: 'quota: 3 builds max' });
  });

  it('publishes what an interceptor made of the result', async () => {
    const run = await testing.reconcile(widget({}, 'loud'));
    expect(run.result?.driverresult.message).toBe('QUIET');
  });

  it("aborts a run past the handler's timeoutMs and reports it timed out", async () => {
    const run = await testing.reconcile(widget({}, 'slow'));
    expect(TestDriver.seenSignal?.aborted).toBe(true);
    expect(run.settlement).toMatchObject({ kind: 'timed-out', action: 'ack' });
    expect(run.result?.driverresult.message).toBe('timed out after 50 ms');
  });

  it('gives each of concurrent reconcile() calls its own result, even of one run id', async () => {
    const runs = await Promise.all(
      ['create', 'process', 'create'].map((event) =>
        testing.reconcile(widget(), { event, runId: 'same-run' }),
      ),
    );
    expect(runs.map((run) => run.result?.driverresult.message)).toEqual([
      'ok create #1',
      'ok process #1',
      'ok create #1',
    ]);
    expect(new Set(runs.map((run) => run.resultMsgId)).size).toBe(3);
  });

  it('acks an event outside the handler filter without running it, and naks an unknown resource', async () => {
    const filtered = await testing.reconcile(widget(), { event: 'delete' });
    expect(filtered.ctx).toBeUndefined();
    expect(filtered.settlement).toMatchObject({ kind: 'filtered', action: 'ack', level: 'warn' });
    const direct = await testing.reconcile(widget(), { event: 'delete', pipelineStep: false });
    expect(direct.settlement).toMatchObject({ kind: 'filtered', level: 'debug' });
    const unknown = await testing.reconcile(widget({}, 'gizmo'));
    expect(unknown.settlement).toMatchObject({ kind: 'unrouted', action: 'nak', delayMs: 5000 });
  });
});

@Controller()
class ControlledDriver {
  static cleanups: string[] = [];

  @Reconcile({ resource: 'held', perResource: 'serialize' })
  async held(@Ctx() ctx: ReconcileContext) {
    ctx.onCleanup((ending) => void ControlledDriver.cleanups.push(`${ctx.runId}:${ending.outcome}`));
    for (let i = 1; i <= 4; i++) ctx.progress(i / 4, 'build');
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 300);
      ctx.signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
    });
    return { success: true, message: 'built' };
  }
}

describe('ConveyorTestingModule run control', () => {
  let testing: ConveyorTestingModule;
  const held = (name = 'r') => ({
    id: name,
    name,
    resource: 'held',
    metadata: {},
    spec: {},
  });

  beforeAll(async () => {
    testing = await ConveyorTestingModule.create({
      controllers: [ControlledDriver],
      options: { driverName: 'unit-control' },
      logger: false,
    });
  });
  afterAll(() => testing.close());

  it('cancels a run in flight, runs its cleanup once, and publishes the cancelled result', async () => {
    const running = testing.reconcile(held('a'), { runId: 'run-a' });
    await new Promise((r) => setTimeout(r, 50));
    testing.cancel('run-a', 'stop');
    const run = await running;
    expect(run.result?.driverresult).toMatchObject({ success: false, message: 'cancelled: stop' });
    expect(run.verb).toEqual({ verb: 'ack' });
    expect(ControlledDriver.cleanups.filter((c) => c.startsWith('run-a:'))).toEqual(['run-a:cancelled']);
    // Throttled: the first report at once, the latest when the run ended.
    expect(run.progress.map((p) => p.fraction)).toEqual([0.25, 1]);
  });

  it('serializes two events of one resource: the second waits, held, and runs once the first let go', async () => {
    const first = testing.reconcile(held('b'), { runId: 'run-b1' });
    await new Promise((r) => setTimeout(r, 50));
    const second = await testing.reconcile(held('b'), { runId: 'run-b2' });
    const firstRun = await first;
    expect(firstRun.settlement.kind).toBe('succeeded');
    // Held, not nak'd: the wait spent no delivery, and the second ran as its first attempt.
    expect(second.settlement.kind).toBe('succeeded');
    expect(second.verb).toEqual({ verb: 'ack' });
    expect(second.ctx?.deliveryCount).toBe(1);
    expect(ControlledDriver.cleanups.indexOf('run-b1:succeeded')).toBeLessThan(
      ControlledDriver.cleanups.indexOf('run-b2:succeeded'),
    );
  });

  it('a cancel ends a run waiting for its resource at once, as cancelled', async () => {
    const first = testing.reconcile(held('c'), { runId: 'run-c1' });
    await new Promise((r) => setTimeout(r, 50));
    const waiting = testing.reconcile(held('c'), { runId: 'run-c2' });
    await new Promise((r) => setTimeout(r, 20));
    const cancelledAt = Date.now();
    testing.cancel('run-c2', 'not needed');
    const second = await waiting;
    expect(Date.now() - cancelledAt).toBeLessThan(200);
    expect(second.result?.driverresult).toMatchObject({ success: false, message: 'cancelled: not needed' });
    expect(second.ctx).toBeUndefined();
    expect((await first).settlement.kind).toBe('succeeded');
  });
});

describe('ConveyorTestingModule resources', () => {
  it('leaves no interval running after many reconcile() calls and close()', async () => {
    // Spied rather than counted with process.getActiveResourcesInfo(): that leaves out unref'd timers.
    const started = jest.spyOn(globalThis, 'setInterval');
    const stopped = jest.spyOn(globalThis, 'clearInterval');
    try {
      const testing = await ConveyorTestingModule.create({
        controllers: [TestDriver],
        options: { driverName: 'unit-resources' },
        logger: false,
      });
      for (let i = 0; i < 20; i++) await testing.reconcile(widget());
      await testing.close();
      const cleared = new Set(stopped.mock.calls.map(([timer]) => timer));
      const running = started.mock.results.filter((r) => !cleared.has(r.value));
      expect(running.length).toBe(0);
    } finally {
      started.mockRestore();
      stopped.mockRestore();
    }
  });
});

describe('ConveyorTestingModule scripted result publishes', () => {
  const shutdownTimeoutMs = 100;
  let testing: ConveyorTestingModule;

  beforeEach(async () => {
    testing = await ConveyorTestingModule.create({
      controllers: [TestDriver],
      options: { driverName: 'unit-publish', shutdownTimeoutMs },
      logger: false,
    });
  });
  afterEach(() => testing.close());

  it('retries a publish that failed transiently, with backoff, and acks once the result is stored', async () => {
    testing.failResultPublish(new Error('connection reset'), 2);
    const run = await testing.reconcile(widget(), { runId: 'run-transient' });
    expect(run.publishAttempts).toBe(3);
    expect(run.settlement).toMatchObject({ kind: 'succeeded', action: 'ack' });
    expect(run.result).toMatchObject({ run_id: 'run-transient', driverresult: { success: true } });
    expect(run.verb).toEqual({ verb: 'ack' });
  });

  it('replaces a result refused as too big, once, by a small failure result; a second refusal dead-letters', async () => {
    const tooBig = () => new ResultRefusedError('message size exceeds maximum allowed', 'max-payload');
    testing.failResultPublish(tooBig());
    const replaced = await testing.reconcile(widget());
    expect(replaced.publishAttempts).toBe(2);
    expect(replaced.settlement).toMatchObject({ kind: 'failed', action: 'ack' });
    expect(replaced.result?.driverresult).toMatchObject({
      success: false,
      message: 'result refused by the server (message size exceeds maximum allowed): data dropped',
    });
    expect(replaced.result?.resource).toMatchObject({ name: 'w1', spec: null, metadata: {} });
    expect(replaced.verb).toEqual({ verb: 'ack' });

    testing.failResultPublish(tooBig(), 2);
    const refused = await testing.reconcile(widget());
    expect(refused.publishAttempts).toBe(2);
    expect(refused.result).toBeUndefined();
    expect(refused.settlement).toMatchObject({ kind: 'dead-lettered', action: 'term' });
  });

  it('dead-letters and terms a message whose result is refused for good (no permission)', async () => {
    testing.failResultPublish(new ResultRefusedError('permissions violation', 'permission'));
    const run = await testing.reconcile(widget(), { runId: 'run-denied' });
    expect(run.publishAttempts).toBe(1);
    expect(run.result).toBeUndefined();
    expect(run.settlement).toMatchObject({ kind: 'dead-lettered', action: 'term' });
    expect(run.verb).toMatchObject({
      verb: 'term',
      reason: expect.stringContaining('permissions violation'),
    });
    // The record still names the run: an operator can find the pipeline it belongs to.
    expect(run.deadLetter).toMatchObject({
      runId: 'run-denied',
      reason: expect.stringContaining('permissions violation'),
      noResult: expect.any(String),
    });
  });

  it('lets a held publish land within the grace after the shutdown deadline, and acks it', async () => {
    const held = testing.holdResultPublish();
    const running = testing.reconcile(widget());
    await held.reached;
    const closed = testing.close();
    await new Promise((r) => setTimeout(r, 3 * shutdownTimeoutMs)); // the deadline hit
    held.release();
    const run = await running;
    expect(run.settlement).toMatchObject({ kind: 'succeeded', action: 'ack' });
    expect(run.result?.driverresult.success).toBe(true);
    expect(run.verb).toEqual({ verb: 'ack' });
    await closed;
  });

  it('acks a held publish still unanswered when the grace ends: the result may be stored, a rerun would store another', async () => {
    const held = testing.holdResultPublish();
    const running = testing.reconcile(widget());
    await held.reached;
    const started = Date.now();
    await testing.close();
    const run = await running;
    expect(Date.now() - started).toBeGreaterThanOrEqual(shutdownTimeoutMs + PUBLISH_GRACE_MS);
    expect(run.result).toBeUndefined();
    expect(run.verb).toEqual({ verb: 'ack' });
  });
});

/** A provider a handler injects, to override. */
@Injectable()
class Registry {
  tagOf(name: string): string {
    return `registry.example/${name}:latest`;
  }
}

@Module({ providers: [Registry], exports: [Registry] })
class RegistryModule {}

@Controller()
class ImageDriver {
  constructor(private readonly registry: Registry) {}

  @Reconcile({ resource: 'image' })
  image(@Payload() resource: Resource) {
    return { success: true, message: `pushed ${this.registry.tagOf(resource.name)}` };
  }

  @UseGuards(DenyConveyor)
  @Reconcile({ resource: 'guarded' })
  guarded() {
    return { success: true, message: 'let in' };
  }
}

describe('ConveyorTestingModule.builder overrides', () => {
  const fake = { tagOf: (name: string) => `fake/${name}` };
  const image = () => widget({}, 'image');
  const built = async (
    testing: ConveyorTestingModule,
    use: (testing: ConveyorTestingModule) => Promise<void>,
  ): Promise<void> => {
    try {
      await use(testing);
    } finally {
      await testing.close();
    }
  };
  const options = {
    controllers: [ImageDriver],
    options: { driverName: 'unit-overrides' },
    logger: false as const,
  };

  it('runs the real provider without overrides, as create() does', async () => {
    await built(
      await ConveyorTestingModule.builder({ ...options, providers: [Registry] }).compile(),
      async (t) => {
        const run = await t.reconcile(image());
        expect(run.result?.driverresult.message).toBe('pushed registry.example/w1:latest');
      },
    );
  });

  it('overrideProvider(...).useValue(fake) replaces the service the handler injects', async () => {
    const testing = await ConveyorTestingModule.builder({ ...options, providers: [Registry] })
      .overrideProvider(Registry)
      .useValue(fake)
      .compile();
    await built(testing, async (t) => {
      const run = await t.reconcile(image(), { runId: 'run-fake' });
      expect(run.settlement).toMatchObject({ kind: 'succeeded', action: 'ack' });
      expect(run.result).toMatchObject({
        run_id: 'run-fake',
        driverresult: { success: true, message: 'pushed fake/w1', driver: 'unit-overrides' },
      });
      expect(t.get(Registry)).toBe(fake);
    });
  });

  it('overrideProvider(...).useFactory and useClass, chained with other overrides', async () => {
    class StubRegistry {
      tagOf(name: string) {
        return `stub/${name}`;
      }
    }
    const viaClass = await ConveyorTestingModule.builder({ ...options, providers: [Registry] })
      .overrideProvider(Registry)
      .useClass(StubRegistry)
      .overrideGuard(DenyConveyor)
      .useValue({ canActivate: () => true })
      .compile();
    await built(viaClass, async (t) => {
      expect((await t.reconcile(image())).result?.driverresult.message).toBe('pushed stub/w1');
      expect((await t.reconcile(widget({}, 'guarded'))).result?.driverresult.message).toBe('let in');
    });
    const viaFactory = await ConveyorTestingModule.builder({ ...options, providers: [Registry] })
      .overrideProvider(Registry)
      .useFactory({ factory: () => fake })
      .compile();
    await built(viaFactory, async (t) => {
      expect((await t.reconcile(image())).result?.driverresult.message).toBe('pushed fake/w1');
    });
  });

  it("overrideGuard replaces a handler's guard: the denied handler runs", async () => {
    const denied = await ConveyorTestingModule.create({ ...options, providers: [Registry] });
    await built(denied, async (t) => {
      expect((await t.reconcile(widget({}, 'guarded'))).result?.driverresult.message).toBe(
        'Forbidden resource',
      );
    });
    const allowed = await ConveyorTestingModule.builder({ ...options, providers: [Registry] })
      .overrideGuard(DenyConveyor)
      .useValue({ canActivate: () => true })
      .compile();
    await built(allowed, async (t) => {
      const run = await t.reconcile(widget({}, 'guarded'));
      expect(run.result?.driverresult).toMatchObject({ success: true, message: 'let in' });
    });
  });

  it('overrideModule replaces an imported module', async () => {
    @Module({ providers: [{ provide: Registry, useValue: fake }], exports: [Registry] })
    class FakeRegistryModule {}
    const testing = await ConveyorTestingModule.builder({ ...options, imports: [RegistryModule] })
      .overrideModule(RegistryModule)
      .useModule(FakeRegistryModule)
      .compile();
    await built(testing, async (t) => {
      expect((await t.reconcile(image())).result?.driverresult.message).toBe('pushed fake/w1');
    });
  });

  it('useMocker supplies the dependencies no module provides', async () => {
    const testing = await ConveyorTestingModule.builder(options)
      .useMocker((token) => (token === Registry ? fake : undefined))
      .compile();
    await built(testing, async (t) => {
      expect((await t.reconcile(image())).result?.driverresult.message).toBe('pushed fake/w1');
    });
  });
});

describe('ConveyorTestingModule environment', () => {
  const saved = process.env.LOKI_URL;
  afterEach(() => {
    if (saved === undefined) delete process.env.LOKI_URL;
    else process.env.LOKI_URL = saved;
  });

  it("ignores the developer's shell: a LOKI_URL there does not turn the Loki sink on", async () => {
    process.env.LOKI_URL = 'http://127.0.0.1:9';
    const testing = await ConveyorTestingModule.create({ controllers: [FilteredDriver], logger: false });
    try {
      expect(testing.get<ConveyorConfig>(CONVEYOR_CONFIG).loki).toBeUndefined();
    } finally {
      await testing.close();
    }
  });

  it('reads the environment it is given (`env: process.env` to use the real one)', async () => {
    const testing = await ConveyorTestingModule.create({
      controllers: [FilteredDriver],
      env: { LOKI_URL: 'http://127.0.0.1:9', CONVEYOR_CONCURRENCY: '3' },
      logger: false,
    });
    try {
      const config = testing.get<ConveyorConfig>(CONVEYOR_CONFIG);
      expect(config.loki?.url).toBe('http://127.0.0.1:9');
      expect(config.concurrency).toBe(3);
    } finally {
      await testing.close();
    }
  });
});
