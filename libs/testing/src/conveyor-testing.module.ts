import { randomBytes, randomUUID } from 'node:crypto';
import { INestApplication, LogLevel, Module, ModuleMetadata, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ConveyorModule } from '../../conveyor/src/module/conveyor.module';
import { CONVEYOR_CONFIG } from '../../conveyor/src/module/conveyor.constants';
import type { ConveyorConfig, ConveyorModuleOptions } from '../../conveyor/src/module/conveyor.options';
import {
  PipelineEvent,
  Resource,
  decodeDriverMessage,
  encodeGoJson,
  pipelineStepSubject,
  resourceSubject,
  toPipelineEvent,
} from '../../conveyor/src/protocol';
import type { ReconcileContext } from '../../conveyor/src/reconcile/reconcile-context';
import {
  createReconcileContext,
  effectiveMaxAttempts,
  runReconcile,
} from '../../conveyor/src/reconcile/reconcile-runner';
import {
  MessageOutcome,
  Settlement,
  decideSettlement,
} from '../../conveyor/src/settlement/settlement.policy';
import { ConveyorStrategy } from '../../conveyor/src/transport/conveyor.strategy';
import { LogShipper } from '../../conveyor/src/logger/log-shipper';
import { createRunBinding, runScope } from '../../conveyor/src/logger/run-scope';

/** What to build: a driver module's parts, like `Test.createTestingModule`. */
export interface ConveyorTestingModuleOptions extends Pick<ModuleMetadata, 'imports' | 'providers'> {
  controllers: Type<unknown>[];
  /** ConveyorModule options; `driverName` defaults to `test-driver`. Nothing connects to NATS. */
  options?: ConveyorModuleOptions;
  /** Runs before the handlers are registered, e.g. `app.useGlobalGuards(...)`. */
  configure?: (app: INestApplication) => void | Promise<void>;
  /** Nest log levels. Default: errors and warnings. */
  logger?: LogLevel[] | false;
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
}

/** What happened: the handler's outcome, the settlement the transport would carry out, the result it would publish. */
export interface ReconcileTestRun {
  outcome: MessageOutcome;
  settlement: Settlement;
  /** The PipelineEvent that would go to `pipelines.driver.result`, if any. */
  result?: PipelineEvent;
  /** The context the handler saw (undefined when no handler ran). */
  ctx?: ReconcileContext;
}

/**
 * Runs `@Reconcile` handlers through the real Nest pipeline (guards, pipes, interceptors, filters,
 * timeouts) and the real settlement policy, without a broker. What it returns is exactly what the
 * transport would do with the message.
 */
export class ConveyorTestingModule {
  private constructor(
    readonly app: INestApplication,
    private readonly strategy: ConveyorStrategy,
    private readonly config: ConveyorConfig,
    private readonly logs: LogShipper,
  ) {}

  static async create(options: ConveyorTestingModuleOptions): Promise<ConveyorTestingModule> {
    @Module({
      imports: [
        ConveyorModule.forRoot({ driverName: 'test-driver', ...options.options }),
        ...(options.imports ?? []),
      ],
      controllers: options.controllers,
      providers: options.providers ?? [],
    })
    class ConveyorTestingRootModule {}
    const app = await NestFactory.create(ConveyorTestingRootModule, {
      logger: options.logger ?? ['error', 'warn'],
      abortOnError: false,
    });
    try {
      const strategy = app.get(ConveyorStrategy);
      await options.configure?.(app);
      strategy.expectAttachment();
      await app.init();
      // Registers the handlers with the strategy (as connectConveyor does) without starting it.
      app.connectMicroservice({ strategy }, { inheritAppConfig: true });
      return new ConveyorTestingModule(app, strategy, app.get(CONVEYOR_CONFIG), app.get(LogShipper));
    } catch (err) {
      await app.close().catch(() => undefined);
      throw err;
    }
  }

  /** A provider or controller of the app. */
  get<T>(token: Type<T> | string | symbol): T {
    return this.app.get(token, { strict: false });
  }

  /** Reconciles `resource` as if the server had sent it, and reports what the transport would do. */
  async reconcile(resource: Resource, message: ReconcileTestMessage = {}): Promise<ReconcileTestRun> {
    const { config } = this;
    const runId = message.runId ?? randomUUID();
    // Through the real decoder, from the bytes the server would publish.
    const decoded = decodeDriverMessage(
      encodeGoJson({
        event: message.event ?? 'create',
        payload: encodeGoJson(resource),
        id: randomBytes(12).toString('hex'),
        run_id: runId,
      }),
    );
    const subject =
      message.pipelineStep === false
        ? resourceSubject(resource.resource)
        : pipelineStepSubject(config.driverName, resource.resource);
    const deliveryCount = message.deliveryCount ?? 1;
    const state = { deliveryCount, maxAttempts: config.maxAttempts, retryDelayMs: config.retryDelayMs };
    const routing = this.strategy.handlerRegistry.route(subject, decoded.message.event);
    if (routing.kind === 'settle') {
      return { outcome: routing.outcome, settlement: decideSettlement(routing.outcome, state) };
    }
    const { meta, handler } = routing;
    const maxAttempts = effectiveMaxAttempts(meta, config);
    const binding = createRunBinding({
      runId,
      driver: config.driverName,
      pipeline: resource.pipeline ?? '',
      event: decoded.message.event,
      messageId: decoded.message.id,
      resource: resource.name,
      resourceType: resource.resource,
    });
    const abort = new AbortController();
    const ctx = createReconcileContext(
      decoded,
      routing.route,
      { subject, deliveryCount, streamSequence: 1 },
      {
        driverName: config.driverName,
        maxAttempts,
        signal: abort.signal,
        logger: this.logs.loggerFor(binding),
      },
    );
    const timeoutMs = meta.timeoutMs ?? config.reconcileTimeoutMs;
    const report = await runScope.run(binding, () => runReconcile({ handler, meta, ctx, abort, timeoutMs }));
    const settlement = decideSettlement(report.outcome, {
      ...state,
      maxAttempts,
      alreadyAcked: config.ackMode === 'onReceive',
      timedOutAfterMs: report.timedOutAfterMs,
    });
    const result = settlement.result
      ? toPipelineEvent(runId, decoded.resource, settlement.result, config.driverName)
      : undefined;
    return { outcome: report.outcome, settlement, result, ctx };
  }

  async close(): Promise<void> {
    await this.app.close();
  }
}
