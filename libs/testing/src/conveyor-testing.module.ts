import { randomBytes, randomUUID } from 'node:crypto';
import {
  ConsoleLogger,
  INestApplication,
  InjectionToken,
  LogLevel,
  ModuleMetadata,
  Type,
} from '@nestjs/common';
import {
  Test,
  type MockFactory,
  type OverrideByFactoryOptions,
  type TestingModuleBuilder,
} from '@nestjs/testing';
import {
  ConveyorModule,
  CONVEYOR_CONFIG,
  PipelineEvent,
  Resource,
  encodeGoJson,
  pipelineStepSubject,
  resourceSubject,
  ConveyorStrategy,
  RunCancellations,
  MemoryLeaseStore,
  type RunProgress,
  prepareReconcileHandlers,
  LogShipper,
  type ConveyorConfig,
  type ConveyorModuleOptions,
  type ReconcileContext,
  type MessageOutcome,
  type Settlement,
  type DeadLetterRecord,
  resolveConveyorConfig,
} from '@conveyor-ci/nestjs/internal';
import { HeldResultPublish, InMemoryMessage, InMemoryResultPort, RecordedVerb } from './in-memory.port';

const DEFAULT_LOG_LEVELS: LogLevel[] = ['error', 'warn'];

/** What to build: a driver module's parts, like `Test.createTestingModule`. */
export interface ConveyorTestingModuleOptions extends Pick<ModuleMetadata, 'imports' | 'providers'> {
  controllers: Type<unknown>[];
  /** ConveyorModule options; `driverName` defaults to `test-driver`. Nothing connects to NATS. */
  options?: ConveyorModuleOptions;
  /** Runs before the handlers are registered, e.g. `app.useGlobalGuards(...)`. */
  configure?: (app: INestApplication) => void | Promise<void>;
  /** Nest log levels. Default: errors and warnings. */
  logger?: LogLevel[] | false;
  /** The server's `max_payload` the results must fit. Default 1 MiB (nats-server's default). */
  maxPayload?: number;
  /**
   * The environment `options` fall back to (`CONVEYOR_*`, `LOKI_URL`…). Default none: a `LOKI_URL`
   * in the developer's shell must not make a unit test push to Loki. Pass `process.env` to use it.
   */
  env?: Readonly<Record<string, string | undefined>>;
}

/** A module {@link ConveyorTestingModuleBuilder.overrideModule} replaces, or replaces it with. */
export type OverridableModule = Parameters<TestingModuleBuilder['overrideModule']>[0];

/** What replaces an overridden provider or enhancer, as in `TestingModuleBuilder`. */
export interface ConveyorOverrideBy {
  useValue(value: unknown): ConveyorTestingModuleBuilder;
  useFactory(options: OverrideByFactoryOptions): ConveyorTestingModuleBuilder;
  useClass(metatype: Type<unknown>): ConveyorTestingModuleBuilder;
}

/** What replaces an overridden module. */
export interface ConveyorOverrideModule {
  useModule(newModule: OverridableModule): ConveyorTestingModuleBuilder;
}

/**
 * A `ConveyorTestingModule` before it is compiled: overrides as with `Test.createTestingModule`
 * (each method hands them to a real `TestingModuleBuilder`), then {@link compile}.
 *
 * ```ts
 * const testing = await ConveyorTestingModule.builder({ controllers: [BuildDriver], providers: [Compiler] })
 *   .overrideProvider(Compiler)
 *   .useValue({ compile: async () => 7 })
 *   .compile();
 * ```
 */
export interface ConveyorTestingModuleBuilder {
  /** Replaces a provider (of the driver's modules or the runtime's), wherever it is injected. */
  overrideProvider(token: InjectionToken): ConveyorOverrideBy;
  /** Replaces a guard given as a class (`@UseGuards(X)`). */
  overrideGuard(token: InjectionToken): ConveyorOverrideBy;
  /** Replaces an interceptor given as a class. */
  overrideInterceptor(token: InjectionToken): ConveyorOverrideBy;
  /** Replaces a pipe given as a class. */
  overridePipe(token: InjectionToken): ConveyorOverrideBy;
  /** Replaces an exception filter given as a class. */
  overrideFilter(token: InjectionToken): ConveyorOverrideBy;
  /** Replaces an imported module by another. */
  overrideModule(module: OverridableModule): ConveyorOverrideModule;
  /** Makes the dependencies no module provides (e.g. with `jest.fn()` based mocks). */
  useMocker(mocker: MockFactory): ConveyorTestingModuleBuilder;
  /** Builds the app with the overrides and makes it ready to reconcile; {@link ConveyorTestingModule.close} it. */
  compile(): Promise<ConveyorTestingModule>;
}

/** {@link ConveyorTestingModuleBuilder} on a real `TestingModuleBuilder`. */
class OverridableTestingModule implements ConveyorTestingModuleBuilder {
  private readonly nest: TestingModuleBuilder;
  private readonly levels: LogLevel[] | false;

  constructor(
    options: ConveyorTestingModuleOptions,
    private readonly start: (app: INestApplication) => Promise<ConveyorTestingModule>,
  ) {
    this.levels = options.logger ?? DEFAULT_LOG_LEVELS;
    // No drift check unless asked: a unit test of a typed handler has no API to compare with.
    const moduleOptions = { driverName: 'test-driver', resourceDrift: 'off' as const, ...options.options };
    this.nest = Test.createTestingModule({
      imports: [ConveyorModule.forRoot(moduleOptions), ...(options.imports ?? [])],
      controllers: options.controllers,
      providers: options.providers ?? [],
    });
    // The module would resolve its options against process.env; a test sees only the env it names.
    this.nest
      .overrideProvider(CONVEYOR_CONFIG)
      .useFactory({ factory: () => resolveConveyorConfig(moduleOptions, options.env ?? {}) });
    // The levels hold while the module is built too (Nest's own TestingLogger drops warnings).
    this.nest.setLogger(new ConsoleLogger({ logLevels: this.levels === false ? [] : this.levels }));
  }

  overrideProvider(token: InjectionToken): ConveyorOverrideBy {
    return this.by(this.nest.overrideProvider(token));
  }

  overrideGuard(token: InjectionToken): ConveyorOverrideBy {
    return this.by(this.nest.overrideGuard(token));
  }

  overrideInterceptor(token: InjectionToken): ConveyorOverrideBy {
    return this.by(this.nest.overrideInterceptor(token));
  }

  overridePipe(token: InjectionToken): ConveyorOverrideBy {
    return this.by(this.nest.overridePipe(token));
  }

  overrideFilter(token: InjectionToken): ConveyorOverrideBy {
    return this.by(this.nest.overrideFilter(token));
  }

  overrideModule(module: OverridableModule): ConveyorOverrideModule {
    return {
      useModule: (newModule) => {
        this.nest.overrideModule(module).useModule(newModule);
        return this;
      },
    };
  }

  useMocker(mocker: MockFactory): ConveyorTestingModuleBuilder {
    this.nest.useMocker(mocker);
    return this;
  }

  async compile(): Promise<ConveyorTestingModule> {
    const moduleRef = await this.nest.compile();
    let app: INestApplication;
    try {
      app = moduleRef.createNestApplication({ logger: this.levels, abortOnError: false });
    } catch (err) {
      await moduleRef.close().catch(() => undefined);
      throw err;
    }
    return this.start(app);
  }

  private by(override: ReturnType<TestingModuleBuilder['overrideProvider']>): ConveyorOverrideBy {
    return {
      useValue: (value) => {
        override.useValue(value);
        return this;
      },
      useFactory: (options) => {
        override.useFactory(options);
        return this;
      },
      useClass: (metatype) => {
        override.useClass(metatype);
        return this;
      },
    };
  }
}

/** One message to reconcile, as the server would send it. */
export interface ReconcileTestMessage {
  /** Default `create`. */
  event?: string;
  /** A pipeline step (`drivers.{driver}.resources.{r}`) rather than a direct resource event. Default true. */
  pipelineStep?: boolean;
  /** Simulates a redelivery. Default 1. */
  deliveryCount?: number;
  runId?: string;
  /** The message bytes exactly, instead of a DriverMessage built from `resource` (to test bad input). */
  raw?: Uint8Array | string;
}

/** What happened: the handler's outcome, the settlement the transport would carry out, the result it would publish. */
export interface ReconcileTestRun {
  outcome: MessageOutcome;
  settlement: Settlement;
  /** The PipelineEvent that would go to `pipelines.driver.result`, if any. */
  result?: PipelineEvent;
  /** The context the handler saw (undefined when no handler ran). */
  ctx?: ReconcileContext;
  /** The final verb the message got (exactly what the NATS transport would have sent). */
  verb: RecordedVerb;
  /** The `Nats-Msg-Id` of the published result, if any. */
  resultMsgId?: string;
  /** The run's progress reports (`ctx.progress()`), in order, throttled as on NATS. */
  progress: RunProgress[];
  /** How many times the result publish was tried (more than once after a transient failure). */
  publishAttempts: number;
  /** The dead-letter record (as `onDeadLetter` got it), when the run dead-lettered the message. */
  deadLetter?: DeadLetterRecord;
}

/**
 * Runs `@Reconcile` handlers without a broker through the transport's own message state machine:
 * the real Nest pipeline (guards, pipes, interceptors, filters, processing hooks, timeouts), the
 * real settlement policy and result encoding, with an in-memory message and result store in place of
 * NATS. What it returns is exactly what the transport would do with the message.
 */
export class ConveyorTestingModule {
  private sequence = 0;
  /** One result store and one set of runs for every reconcile(), as a replica has on its connection. */
  private readonly port: InMemoryResultPort;
  private readonly runs: ReturnType<ConveyorStrategy['createRuns']>;
  private readonly stopHearingCancels: () => void;
  private closing?: Promise<void>;

  private constructor(
    readonly app: INestApplication,
    strategy: ConveyorStrategy,
    private readonly config: ConveyorConfig,
    logs: LogShipper,
    maxPayload: number,
  ) {
    this.port = new InMemoryResultPort(config, logs, maxPayload, new MemoryLeaseStore(), (id, reason) =>
      this.cancel(id, reason),
    );
    this.runs = strategy.createRuns(this.port, () => ({ maxDeliver: -1, heartbeatMs: 60_000 }));
    // Cancels (`cancel()`) reach runs in flight, as they would on a replica.
    this.stopHearingCancels = app.get(RunCancellations).addListener(this.runs);
  }

  /**
   * Builds the driver's module and makes it ready to reconcile: `builder(options).compile()`.
   * Use {@link builder} to override providers, guards, interceptors, pipes, filters or modules.
   */
  static create(options: ConveyorTestingModuleOptions): Promise<ConveyorTestingModule> {
    return ConveyorTestingModule.builder(options).compile();
  }

  /**
   * The module built on `Test.createTestingModule({ imports: [ConveyorModule.forRoot(options.options),
   * ...options.imports], controllers, providers })`: override its providers, enhancers or modules as
   * with Nest's `TestingModuleBuilder`, then {@link ConveyorTestingModuleBuilder.compile} it.
   */
  static builder(options: ConveyorTestingModuleOptions): ConveyorTestingModuleBuilder {
    return new OverridableTestingModule(options, (app) => ConveyorTestingModule.start(app, options));
  }

  /** Readies a built app as a replica's would be, without connecting: handlers registered with the strategy. */
  private static async start(
    app: INestApplication,
    options: ConveyorTestingModuleOptions,
  ): Promise<ConveyorTestingModule> {
    try {
      const strategy = app.get(ConveyorStrategy);
      await options.configure?.(app);
      strategy.expectAttachment();
      await app.init();
      prepareReconcileHandlers(app);
      // Registers the handlers with the strategy (as connectConveyor does) without starting it.
      app.connectMicroservice({ strategy }, { inheritAppConfig: true });
      return new ConveyorTestingModule(
        app,
        strategy,
        app.get(CONVEYOR_CONFIG),
        app.get(LogShipper),
        options.maxPayload ?? 1024 * 1024,
      );
    } catch (err) {
      await app.close().catch(() => undefined);
      throw err;
    }
  }

  /**
   * Cancels run `runId` as `RunControl.cancel` would from another process: a `reconcile()` of that
   * run still in flight is aborted (its handler's `ctx.signal`), and one started later is cancelled
   * as it starts.
   */
  cancel(runId: string, reason = 'cancelled by request'): void {
    this.app.get(RunCancellations).cancelled(runId, reason);
  }

  /** A provider or controller of the app. */
  get<T>(token: Type<T> | string | symbol): T {
    return this.app.get(token, { strict: false });
  }

  /**
   * The next `times` result publishes (of whichever runs publish next) throw `error` instead of
   * storing the result; the run handles it as it would a NATS error. A `ResultRefusedError` refuses
   * the result for good: cause `max-payload` replaces it once with a small failure result, any other
   * cause dead-letters the message and terms it. Any other error is transient: the run retries the
   * publish with backoff, heartbeating the message meanwhile.
   *
   * Scripted publishes (this and {@link holdResultPublish}) are used in the order they were scripted.
   */
  failResultPublish(error: unknown, times = 1): void {
    this.port.failPublishes(error, times);
  }

  /**
   * Holds the next result publish on the wire until `release()`: its run stays `publishing` (the
   * result may be stored, so no shutdown naks it). A {@link close} meanwhile waits
   * `shutdownTimeoutMs`, then gives the publish a short grace to land before it acks the message
   * anyway (a rerun could store a second result).
   */
  holdResultPublish(): HeldResultPublish {
    return this.port.holdPublish();
  }

  /**
   * Reconciles `resource` as if the server had sent it, and reports what the transport would do.
   * Concurrent calls each report their own run, even of one run id.
   */
  async reconcile(resource: Resource, message: ReconcileTestMessage = {}): Promise<ReconcileTestRun> {
    const { config } = this;
    const bytes =
      message.raw ??
      encodeGoJson({
        event: message.event ?? 'create',
        payload: encodeGoJson(resource),
        id: randomBytes(12).toString('hex'),
        run_id: message.runId ?? randomUUID(),
      });
    const subject =
      message.pipelineStep === false
        ? resourceSubject(resource.resource)
        : pipelineStepSubject(config.driverName, resource.resource);
    const inbound = new InMemoryMessage(
      subject,
      typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes,
      message.deliveryCount ?? 1,
      ++this.sequence,
    );
    const { value: run, record } = await this.port.record(() => this.runs.start(inbound));
    const published = record.results[0];
    return {
      outcome: run.outcome!,
      settlement: run.settlement!,
      result: published
        ? (JSON.parse(new TextDecoder().decode(published.bytes)) as PipelineEvent)
        : undefined,
      resultMsgId: published?.msgId,
      ctx: run.ctx,
      verb: inbound.verbs[0],
      progress: record.progress,
      publishAttempts: record.publishAttempts,
      deadLetter: record.deadLetters[0],
    };
  }

  /**
   * Shuts down as a replica does: runs still in flight get `shutdownTimeoutMs` to finish (those
   * waiting for a slot are nak'd at once), then the app closes. Calling it again waits for the same.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        await this.runs.drain(this.config.shutdownTimeoutMs);
      } finally {
        this.stopHearingCancels();
        await this.app.close();
      }
    })();
    return this.closing;
  }
}
