import { INestApplication, LogLevel, Module, ModuleMetadata, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  ConveyorModule,
  ConveyorModuleOptions,
  ConveyorStrategy,
  connectConveyor,
  deleteDriverConsumer,
} from '@conveyor-ci/nestjs';
import { abortable } from '@conveyor-ci/nestjs/internal';
import { ConveyorTestEnv, NatsServerOptions } from '@conveyor-ci/testing';
import { settledDeliveries } from './consumer-deliveries';

/** A driver app as a user would write it: ConveyorModule + controllers, attached with connectConveyor. */
export async function startDriverApp(opts: {
  options: ConveyorModuleOptions;
  controllers: Type<unknown>[];
  providers?: ModuleMetadata['providers'];
  /** More modules next to ConveyorModule (health, metrics…). */
  imports?: ModuleMetadata['imports'];
  /** Runs before connectConveyor, e.g. to add global enhancers or another microservice. */
  configure?: (app: INestApplication) => void | Promise<void>;
  /** Nest's logger levels (default: errors and warnings). */
  logger?: LogLevel[];
}): Promise<{ app: INestApplication; strategy: ConveyorStrategy }> {
  @Module({
    imports: [ConveyorModule.forRoot(opts.options), ...(opts.imports ?? [])],
    controllers: opts.controllers,
    providers: opts.providers ?? [],
  })
  class TestDriverModule {}
  const app = await NestFactory.create(TestDriverModule, {
    logger: opts.logger ?? ['error', 'warn'],
    abortOnError: false,
  });
  try {
    await opts.configure?.(app);
    const strategy = await connectConveyor(app);
    return { app, strategy };
  } catch (err) {
    await app.close().catch(() => undefined);
    throw err;
  }
}

let counter = 0;
/** A driver name unique within the run (consumers are per driver name). */
export function uniqueDriverName(prefix = 'driver'): string {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}`;
}

/**
 * A test suite on one ConveyorTestEnv (started before the suite, stopped after): `start` driver apps
 * (closed after each test, last first, then their durable consumers deleted) and check consumers.
 */
/** How long one teardown step may take: an app's close is bounded by its own deadlines (25 s). */
const CLOSE_TIMEOUT_MS = 40_000;

async function closedWithin(closing: Promise<unknown>, what: string): Promise<void> {
  const { ended } = await abortable(closing, undefined, CLOSE_TIMEOUT_MS);
  if (ended !== 'done') throw new Error(`teardown: ${what} did not finish within ${CLOSE_TIMEOUT_MS} ms`);
}

export function useDriverApps(serverOptions: NatsServerOptions = {}) {
  let env: ConveyorTestEnv | undefined;
  const getEnv = () => env!;
  const closers: { what: string; close: () => Promise<unknown> }[] = [];
  const consumers = new Set<string>();
  beforeAll(async () => {
    env = await ConveyorTestEnv.start(serverOptions);
  });
  afterEach(async () => {
    // Each bounded and named: a close that hangs fails the test saying which, not jest's hook timeout.
    for (const { what, close } of closers.splice(0).reverse()) await closedWithin(close(), what);
    // A durable left behind keeps interest in its subjects (interest retention), so a later test's
    // consumer on the same subjects (`resources.widget`…) would get this test's direct events too,
    // and its delivery count would depend on which tests ran before it.
    for (const name of consumers) await deleteDriverConsumer(getEnv().jsm, name);
    consumers.clear();
  });
  afterAll(() => env?.stop());
  return {
    /** The suite's nats-server with Conveyor's streams, a client and a result collector. */
    get env(): ConveyorTestEnv {
      return getEnv();
    },
    /** Runs `close` after the current test (with the apps, last first); `what` names it if it hangs. */
    closeAfterTest(close: () => Promise<unknown>, what = 'a closeAfterTest callback'): void {
      closers.push({ what, close });
    },
    /** Starts a driver app on the env's NATS (or `options.servers`) and waits until it consumes. */
    async start(
      driverName: string,
      controllers: Type<unknown>[],
      extra: Partial<Parameters<typeof startDriverApp>[0]> = {},
    ) {
      const started = await startDriverApp({
        ...extra,
        options: { driverName, servers: getEnv().url, ...(extra.options ?? {}) },
        controllers,
      });
      closers.push({ what: `app.close() of driver "${driverName}"`, close: () => started.app.close() });
      consumers.add(extra.options?.driverName ?? driverName);
      await started.strategy.whenConsuming();
      return started;
    },
    /**
     * The consumer ends with nothing pending and nothing unacknowledged, after exactly `deliveries`
     * deliveries: the events it got plus every redelivery the test provokes, so none beyond those.
     */
    async expectSettled(name: string, deliveries: number, timeoutMs?: number): Promise<void> {
      expect(await settledDeliveries(getEnv().jsm, name, timeoutMs)).toBe(deliveries);
    },
  };
}
