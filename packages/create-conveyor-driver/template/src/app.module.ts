import { Module } from '@nestjs/common';
import { ConveyorModule } from '@conveyor-ci/nestjs';
import { ConveyorHealthModule } from '@conveyor-ci/nestjs/health';
import { ConveyorMetricsModule } from '@conveyor-ci/nestjs/metrics';
import { __RESOURCE_CLASS__Driver } from './app.driver';

@Module({
  imports: [
    // Settings come from the environment (CONVEYOR_NATS_URL, CONVEYOR_API_URL, ...) unless given here.
    ConveyorModule.forRoot({ driverName: process.env.CONVEYOR_DRIVER_NAME ?? '__DRIVER_NAME__' }),
    ConveyorHealthModule.forRoot(), // /health/live, /health/ready, /health
    ConveyorMetricsModule.forRoot(), // /metrics
  ],
  controllers: [__RESOURCE_CLASS__Driver],
})
export class AppModule {}
