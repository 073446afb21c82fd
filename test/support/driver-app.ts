import { INestApplication, Module, ModuleMetadata, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  ConveyorModule,
  ConveyorModuleOptions,
  ConveyorStrategy,
  MESSAGES_STREAM,
  connectConveyor,
} from '@conveyor-ci/nestjs';
import { ConveyorTestEnv, NatsServerOptions, waitForSettled } from '@conveyor-ci/testing';

/** A driver app as a user would write it: ConveyorModule + controllers, attached with connectConveyor. */
export async function startDriverApp(opts: {
  options: ConveyorModuleOptions;
  controllers: Type<unknown>[];
  providers?: ModuleMetadata['providers'];
  /** More modules next to ConveyorModule (health, metrics…). */
  imports?: ModuleMetadata['imports'];
  /** Runs before connectConveyor, e.g. to add global enhancers or another microservice. */
  configure?: (app: INestApplication) => void | Promise<void>;
}): Promise<{ app: INestApplication; strategy: ConveyorStrategy }> {
  @Module({
    imports: [ConveyorModule.forRoot(opts.options), ...(opts.imports ?? [])],
    controllers: opts.controllers,
    providers: opts.providers ?? [],
  })
  class TestDriverModule {}
  const app = await NestFactory.create(TestDriverModule, { logger: ['error', 'warn'], abortOnError: false });
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
 * (closed after each test, last first) and check consumers.
 */
export function useDriverApps(serverOptions: NatsServerOptions = {}) {
  let env: ConveyorTestEnv | undefined;
  const getEnv = () => env!;
  const closers: (() => Promise<unknown>)[] = [];
  beforeAll(async () => {
    env = await ConveyorTestEnv.start(serverOptions);
  });
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });
  afterAll(() => env?.stop());
  return {
    /** The suite's nats-server with Conveyor's streams, a client and a result collector. */
    get env(): ConveyorTestEnv {
      return getEnv();
    },
    /** Runs `close` after the current test (with the apps, last first). */
    closeAfterTest(close: () => Promise<unknown>): void {
      closers.push(close);
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
      closers.push(() => started.app.close());
      await started.strategy.whenConsuming();
      return started;
    },
    /** The consumer made exactly `count` deliveries (so none beyond the expected ones) and acked. */
    async expectDeliveries(name: string, count: number): Promise<void> {
      const info = await getEnv().jsm.consumers.info(MESSAGES_STREAM, name);
      expect({ deliveries: info.delivered.consumer_seq, acked: info.ack_floor.stream_seq > 0 }).toEqual({
        deliveries: count,
        acked: true,
      });
    },
    /** The consumer ends with nothing pending, nothing unacknowledged and nothing redelivered. */
    async expectSettled(name: string, timeoutMs?: number): Promise<void> {
      expect(await waitForSettled(getEnv().jsm, name, timeoutMs)).toEqual({
        pending: 0,
        ackPending: 0,
        redelivered: 0,
      });
    },
  };
}
