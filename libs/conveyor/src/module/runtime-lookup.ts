import type { Type } from '@nestjs/common';
import type { ModuleRef } from '@nestjs/core';
import { ConveyorStartupError } from './startup.error';

/**
 * One of the driver runtime's singletons (the strategy, the log shipper, the resolved config),
 * wherever in the app `ConveyorModule` was imported. Health and metrics look them up across modules
 * rather than injecting them, so they work beside `ConveyorModule.forRoot({ isGlobal: false })`;
 * importing `ConveyorModule` themselves would create a second runtime. Call it at `onModuleInit` or
 * later: before that, Nest may not have created the instance yet.
 */
export function runtimeSingleton<T>(moduleRef: ModuleRef, token: Type<T> | symbol, consumer: string): T {
  let found: T | undefined;
  try {
    found = moduleRef.get<T>(token, { strict: false });
  } catch {
    found = undefined;
  }
  if (found === undefined || found === null) {
    throw new ConveyorStartupError(
      `${consumer} needs the driver runtime: import ConveyorModule.forRoot() or forRootAsync() in the app.`,
    );
  }
  return found;
}
