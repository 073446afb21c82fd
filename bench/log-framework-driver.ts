/**
 * Logger scenarios (b) and (c): a driver that logs a burst of lines with `ctx.logger.info`, written
 * the way the README tells a user to, through the public barrel only (the logger's internals are
 * free to change under the bench). (c) only adds the Loki sink.
 */
import 'reflect-metadata';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx } from '@nestjs/microservices';
import {
  ConveyorModule,
  DriverLogger,
  Reconcile,
  connectConveyor,
  type DriverResult,
  type ReconcileContext,
} from '@conveyor-ci/nestjs';
import { announceConsuming, failChild, now, onStop, readChildConfig, report } from './child-protocol';
import { logLine } from './log-lines';

const config = readChildConfig();
const logging = config.logging;
if (!logging) throw new Error('log-framework-driver needs the logging config');
const { lines } = logging;

@Controller()
class LoggingDriver {
  // Synchronous on purpose, as a handler that logs a step's output in a tight loop: the logger
  // must not make it wait, and whatever reaches the broker in time is the framework's doing.
  @Reconcile({ resource: 'pipeline' })
  reconcile(@Ctx() ctx: ReconcileContext): DriverResult {
    let loggerMs = 0;
    const startedAt = now();
    for (let i = 1; i <= lines; i++) {
      // The text exists before the call, as a handler's line does; only the logging is timed.
      const text = logLine(i, lines);
      const t0 = performance.now();
      ctx.logger.info(text);
      loggerMs += performance.now() - t0;
    }
    const endedAt = now();
    const memory = process.memoryUsage();
    // Not awaited: the handler stays synchronous. IPC keeps order, so this arrives before `stats`.
    void report({
      type: 'logged',
      startedAt,
      endedAt,
      lines,
      loggerMs,
      rssMiB: memory.rss / 2 ** 20,
      heapUsedMiB: memory.heapUsed / 2 ** 20,
    }).catch(failChild);
    return { success: true };
  }
}

@Module({
  imports: [
    ConveyorModule.forRoot({
      driverName: config.driver,
      servers: config.servers,
      concurrency: 1,
      ...(logging.lokiUrl ? { loki: { url: logging.lokiUrl } } : {}),
    }),
  ],
  controllers: [LoggingDriver],
})
class BenchLoggingModule {}

async function main(): Promise<void> {
  const app = await NestFactory.create(BenchLoggingModule, {
    logger: ['error', 'warn'],
    abortOnError: false,
  });
  const logger = app.get(DriverLogger);
  onStop(async () => {
    // close() flushes every sink (up to logs.flushTimeoutMs): the counters after it are final.
    await app.close();
    // Typed loosely on purpose: the counters' shape may change with the logger, the bench must not.
    await report({ type: 'stats', stats: (logger as { stats?: unknown }).stats });
  });
  const strategy = await connectConveyor(app);
  await strategy.whenConsuming();
  announceConsuming();
}

main().catch(failChild);
