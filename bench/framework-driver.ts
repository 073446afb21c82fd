/**
 * Scenarios (b) and (c): a driver written the way the README tells a user to, through the public
 * barrel only (the framework's internals are free to change under the bench).
 */
import 'reflect-metadata';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ConveyorModule, Reconcile, connectConveyor, type DriverResult } from '@conveyor-ci/nestjs';
import { announceConsuming, failChild, onStop, readChildConfig } from './child-protocol';

const config = readChildConfig();

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
  ],
  controllers: [config.handlerDelayMs > 0 ? SlowDriver : NoopDriver],
})
class BenchDriverModule {}

async function main(): Promise<void> {
  const app = await NestFactory.create(BenchDriverModule, { logger: ['error', 'warn'], abortOnError: false });
  onStop(() => app.close());
  const strategy = await connectConveyor(app);
  await strategy.whenConsuming();
  announceConsuming();
}

main().catch(failChild);
