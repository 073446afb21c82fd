import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { Logger } from 'nestjs-pino';
import { connectConveyor } from '@conveyor-ci/nestjs';
import { AppModule } from './app.module';

function httpPort(): number {
  const raw = process.env.PORT ?? '3000';
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`PORT=${JSON.stringify(raw)} is not a TCP port (0-65535)`);
  }
  return port;
}

async function bootstrap(): Promise<void> {
  const port = httpPort();
  const app = await NestFactory.create(AppModule, { bufferLogs: true });
  app.useLogger(app.get(Logger));
  // useProcessExit: exit 0 after a clean drain; Nest's default re-raises the signal (exit 143), and
  // the drain's outcome is then indistinguishable from a kill.
  app.enableShutdownHooks(['SIGTERM', 'SIGINT'], { useProcessExit: true });
  await connectConveyor(app);
  await app.listen(port, process.env.HOST ?? '0.0.0.0');
}

bootstrap().catch((err) => {
  // Startup errors (bad config, duplicate handlers) must be readable, then exit non-zero.
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  process.exit(1);
});
