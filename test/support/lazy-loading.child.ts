/**
 * A minimal driver in a process of its own, for test/integration/lazy-loading.spec.ts: run with
 * `node -r test/support/ts-require.js` and an IPC channel, it imports the library's public barrel
 * as an app does, starts ConveyorModule.forRoot with the options the parent sends, reconciles the
 * parent's events and, when asked, reports every module in its `require.cache`. Jest's module
 * registry would mix the test's own imports in; a fresh process shows what the driver loaded.
 */
import { Controller, Inject, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  ConveyorClient,
  ConveyorModule,
  ConveyorModuleOptions,
  Reconcile,
  ReconcileContext,
  Resource,
  connectConveyor,
} from '../../libs/conveyor/src';

/** What the parent sends first. */
export interface LazyChildStart {
  options: ConveyorModuleOptions;
  /** Reconcile with a handler that calls the API (`GET /` and a log stream) through ConveyorClient. */
  useClient: boolean;
}

/** What the child sends back. */
export type LazyChildMessage =
  | { type: 'consuming' }
  | { type: 'called'; served: unknown; lines: string[] }
  | { type: 'failed'; error: string }
  | { type: 'modules'; modules: string[] };

const send = (message: LazyChildMessage) => process.send!(message);

@Controller()
class PlainDriver {
  @Reconcile({ resource: 'lazy' })
  run(@Payload() resource: Resource, @Ctx() ctx: ReconcileContext) {
    ctx.logger.info(`reconciling ${resource.name}`);
    return { success: true };
  }
}

@Controller()
class ClientDriver {
  constructor(@Inject(ConveyorClient) private readonly client: ConveyorClient) {}

  @Reconcile({ resource: 'lazy' })
  async run(@Payload() resource: Resource, @Ctx() ctx: ReconcileContext) {
    ctx.logger.info(`reconciling ${resource.name}`);
    const served = await this.client.serverInfo({ timeoutMs: 5000 });
    const lines: string[] = [];
    for await (const log of this.client.streamPipelineLogs(ctx.runId, { timeoutMs: 5000 }))
      lines.push(log.message);
    send({ type: 'called', served, lines });
    return { success: true };
  }
}

async function main(start: LazyChildStart): Promise<void> {
  @Module({
    imports: [ConveyorModule.forRoot(start.options)],
    controllers: [start.useClient ? ClientDriver : PlainDriver],
  })
  class LazyDriverModule {}

  const app = await NestFactory.create(LazyDriverModule, { logger: ['error', 'warn'], abortOnError: false });
  const strategy = await connectConveyor(app);
  await strategy.whenConsuming();
  send({ type: 'consuming' });
  process.once('message', () => {
    send({ type: 'modules', modules: Object.keys(require.cache) });
    void app.close().finally(() => process.disconnect());
  });
}

process.once('message', (start: LazyChildStart) => {
  main(start).catch((err: unknown) => {
    send({ type: 'failed', error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    process.disconnect();
  });
});
