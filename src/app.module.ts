import { Module } from '@nestjs/common';
import { LoggerModule } from 'nestjs-pino';
import { ConveyorModule } from '@conveyor-ci/nestjs';
import { ConveyorHealthModule } from '@conveyor-ci/nestjs/health';
import { ConveyorMetricsModule } from '@conveyor-ci/nestjs/metrics';
import { ShellDriver } from './shell/shell.driver';

@Module({
  imports: [
    LoggerModule.forRoot({ pinoHttp: { level: process.env.LOG_LEVEL ?? 'info', autoLogging: false } }),
    ConveyorModule.forRoot({ driverName: process.env.CONVEYOR_DRIVER_NAME || 'shell-runner' }),
    ConveyorHealthModule.forRoot(), // /health, /health/live, /health/ready
    ConveyorMetricsModule.forRoot(), // /metrics
  ],
  controllers: [ShellDriver],
})
export class AppModule {}
