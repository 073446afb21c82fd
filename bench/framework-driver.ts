/**
 * Scenarios (b) and (c): a driver written the way the README tells a user to, through the public
 * barrel only (the framework's internals are free to change under the bench). With `httpPort` (the
 * footprint section's minimal driver) it also serves `/health` there, as the README's driver does.
 */
import 'reflect-metadata';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ConveyorModule, Reconcile, connectConveyor, type DriverResult } from '@conveyor-ci/nestjs';
import { ConveyorHealthModule } from '@conveyor-ci/nestjs/health';
import {
  announceConsuming,
  countByPackage,
  failChild,
  now,
  onStop,
  readChildConfig,
  report,
  type DriverChildConfig,
} from './child-protocol';

/** Every import above is loaded (the first statement to run after them). */
const importsDone = now();
// `conveyor-nestjs bundle` primes the bundled build's code cache by starting it on its own, as a
// user's driver is primed: configured by its environment, never reaching a server.
const config: DriverChildConfig = process.send
  ? readChildConfig()
  : {
      servers: process.env.CONVEYOR_NATS_URL ?? 'nats://127.0.0.1:1',
      driver: 'bench-prime',
      concurrency: 1,
      handlerDelayMs: 0,
      httpPort: Number(process.env.PORT ?? 0),
    };

@Controller()
class NoopDriver {
  // Synchronous on purpose: whatever this scenario costs is the framework's own.
  @Reconcile({ resource: 'pipeline' })
  reconcile(): DriverResult {
    return { success: true };
  }
}

@Controller()
class SlowDriver {
  @Reconcile({ resource: 'pipeline' })
  async reconcile(): Promise<DriverResult> {
    await new Promise((resolve) => setTimeout(resolve, config.handlerDelayMs));
    return { success: true };
  }
}

@Module({
  imports: [
    ConveyorModule.forRoot({
      driverName: config.driver,
      servers: config.servers,
      concurrency: config.concurrency,
    }),
    ...(config.httpPort === undefined ? [] : [ConveyorHealthModule]),
  ],
  controllers: [config.handlerDelayMs > 0 ? SlowDriver : NoopDriver],
})
class BenchDriverModule {}

async function main(): Promise<void> {
  // performance.timeOrigin is the process start; nodeTiming.bootstrapComplete is when Node's own
  // bootstrap ended and the main script began to load.
  // Each phase is named after the step that ends at its stamp.
  const phases = [
    { name: 'fork and exec (spawn to process start)', at: performance.timeOrigin },
    { name: 'Node bootstrap', at: performance.timeOrigin + performance.nodeTiming.bootstrapComplete },
    { name: 'require() of Nest and the library', at: importsDone },
  ];
  const stamp = (name: string) => phases.push({ name, at: now() });
  const app = await NestFactory.create(BenchDriverModule, { logger: ['error', 'warn'], abortOnError: false });
  stamp('NestFactory.create');
  onStop(() => app.close());
  const strategy = await connectConveyor(app);
  stamp('connectConveyor: app.init, startAllMicroservices');
  if (config.httpPort !== undefined) {
    await app.listen(config.httpPort, '127.0.0.1');
    stamp('app.listen');
  }
  await strategy.whenConsuming();
  stamp('whenConsuming: NATS connected, consumer bound');
  await report({
    type: 'startup',
    phases,
    modules: countByPackage(Object.keys(require.cache)),
    clock: { at: now(), monotonicUs: Number(process.hrtime.bigint() / 1000n) },
  });
  announceConsuming();
}

main().catch(failChild);
