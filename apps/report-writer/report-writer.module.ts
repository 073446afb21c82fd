import { Module } from '@nestjs/common';
import { ConveyorModule } from '@conveyor-ci/nestjs';
import { ConveyorHealthModule } from '@conveyor-ci/nestjs/health';
import { ConveyorMetricsModule } from '@conveyor-ci/nestjs/metrics';
import { REPORT_SOURCE_DRIVER, ReportWriterDriver } from './report-writer.driver';

@Module({
  imports: [
    ConveyorModule.forRoot({ driverName: process.env.CONVEYOR_DRIVER_NAME || 'report-writer' }),
    ConveyorHealthModule.forRoot(), // /health, /health/live, /health/ready
    ConveyorMetricsModule.forRoot(), // /metrics
  ],
  controllers: [ReportWriterDriver],
  providers: [
    { provide: REPORT_SOURCE_DRIVER, useValue: process.env.REPORT_SOURCE_DRIVER || 'shell-runner' },
  ],
})
export class ReportWriterModule {}
