import type { INestApplication } from '@nestjs/common';
import { ReconcileExplorer } from '../reconcile/reconcile.explorer';
import { applyOutcomeInterceptors } from '../reconcile/reconcile-errors';
import { ConveyorStrategy } from './conveyor.strategy';
import { ConveyorStartupError } from '../module/startup.error';

/**
 * Attaches the Conveyor transport to a Nest app and starts it.
 *
 * Runs `app.init()` first so every `onModuleInit` has finished before the first message is
 * dispatched, then connects the strategy with `inheritAppConfig` (global guards, pipes,
 * interceptors and filters apply to `@Reconcile` handlers too) and starts it. Consumption begins in
 * the background; `app.listen()` can follow at once.
 * @returns the strategy, e.g. to `await strategy.whenConsuming()`.
 */
export async function connectConveyor(app: INestApplication): Promise<ConveyorStrategy> {
  let strategy: ConveyorStrategy;
  try {
    strategy = app.get(ConveyorStrategy, { strict: false });
  } catch {
    throw new ConveyorStartupError(
      'connectConveyor(app): ConveyorModule is not imported; add ConveyorModule.forRoot({ driverName }) to your AppModule',
    );
  }
  strategy.expectAttachment();
  await app.init();
  prepareReconcileHandlers(app);
  app.connectMicroservice({ strategy }, { inheritAppConfig: true });
  await app.startAllMicroservices();
  return strategy;
}

/** @internal Before Nest builds the handlers: the outcome interceptor where a pipe can run. */
export function prepareReconcileHandlers(app: INestApplication): void {
  const handlers = app.get(ReconcileExplorer, { strict: false }).explore();
  applyOutcomeInterceptors(
    app,
    handlers.filter((h) => h.inController),
  );
}
