/**
 * report-writer: the second example driver. As a later step of a pipeline, it reads the result the
 * shell runner left on the resource and creates a `report` resource through the Conveyor API
 * (ConveyorClient). Env: CONVEYOR_NATS_URL, CONVEYOR_API_URL, CONVEYOR_DRIVER_NAME (default
 * `report-writer`), REPORT_SOURCE_DRIVER (default `shell-runner`), PORT (default 3001), HOST.
 */
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { connectConveyor } from '@conveyor-ci/nestjs';
import { ReportWriterModule } from './report-writer.module';

async function bootstrap(): Promise<void> {
  const port = Number(process.env.PORT ?? '3001');
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`PORT=${JSON.stringify(process.env.PORT)} is not a TCP port (0-65535)`);
  const app = await NestFactory.create(ReportWriterModule, { logger: ['log', 'warn', 'error'] });
  app.enableShutdownHooks(['SIGTERM', 'SIGINT'], { useProcessExit: true });
  await connectConveyor(app);
  await app.listen(port, process.env.HOST ?? '0.0.0.0');
}

bootstrap().catch((err) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
