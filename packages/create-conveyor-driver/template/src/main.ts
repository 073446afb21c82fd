import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { connectConveyor } from '@conveyor-ci/nestjs';
import { AppModule } from './app.module';

async function bootstrap(): Promise<void> {
  const app = await NestFactory.create(AppModule, { bufferLogs: true });
  // SIGTERM drains: runs in flight finish (or go back to the queue) before the process exits.
  app.enableShutdownHooks(['SIGTERM', 'SIGINT'], { useProcessExit: true });
  await connectConveyor(app);
  await app.listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? '0.0.0.0');
}
void bootstrap();
