/**
 * The fault driver: a built driver process whose `fault` handler misbehaves on request (throws,
 * hangs, sleeps, returns unencodable or oversize data: see FaultSpec), for the fault suite
 * (`npm run test:faults`) and for probing how a deployment copes. Same env as the reference driver.
 */
import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { LoggerModule, Logger } from 'nestjs-pino';
import { ConveyorModule, connectConveyor } from '@conveyor-ci/nestjs';
import { ConveyorHealthModule } from '@conveyor-ci/nestjs/health';
import { FaultDriver } from './fault.driver';

@Module({
  imports: [
    LoggerModule.forRoot({ pinoHttp: { level: process.env.LOG_LEVEL ?? 'info', autoLogging: false } }),
    ConveyorModule.forRoot({ driverName: process.env.CONVEYOR_DRIVER_NAME || 'fault-driver' }),
    ConveyorHealthModule.forRoot(),
  ],
  controllers: [FaultDriver],
})
class FaultDriverModule {}

async function bootstrap(): Promise<void> {
  const app = await NestFactory.create(FaultDriverModule, { bufferLogs: true });
  app.useLogger(app.get(Logger));
  app.enableShutdownHooks(['SIGTERM', 'SIGINT'], { useProcessExit: true });
  await connectConveyor(app);
  await app.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1');
}

bootstrap().catch((err) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
