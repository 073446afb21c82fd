import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { connectConveyor } from '@conveyor-ci/nestjs';
import { AppModule } from './app.module.js';

async function bootstrap(): Promise<void> {
  const app = await NestFactory.create(AppModule, { bufferLogs: true });
  app.enableShutdownHooks(['SIGTERM', 'SIGINT'], { useProcessExit: true });
  await connectConveyor(app);
  await app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1');
}
await bootstrap();
