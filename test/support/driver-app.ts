import { INestApplication, Module, ModuleMetadata, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  ConveyorModule,
  ConveyorModuleOptions,
  ConveyorStrategy,
  connectConveyor,
} from '@conveyor-ci/nestjs';

/** A driver app as a user would write it: ConveyorModule + controllers, attached with connectConveyor. */
export async function startDriverApp(opts: {
  options: ConveyorModuleOptions;
  controllers: Type<unknown>[];
  providers?: ModuleMetadata['providers'];
  /** Runs before connectConveyor, e.g. to add global enhancers or another microservice. */
  configure?: (app: INestApplication) => void | Promise<void>;
}): Promise<{ app: INestApplication; strategy: ConveyorStrategy }> {
  @Module({
    imports: [ConveyorModule.forRoot(opts.options)],
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
