import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { PrometheusModule } from '@willsoto/nestjs-prometheus';
import { ConveyorModule } from '@conveyor-ci/nestjs';
import { ConveyorHealthModule } from '@conveyor-ci/nestjs/health';
import { ConveyorMetricsModule } from '@conveyor-ci/nestjs/metrics';
import { HealthController } from './health.controller.js';
import { WidgetDriver } from './widget.driver.js';

// An app that had /metrics and /health before it became a driver: the Conveyor modules add their
// metrics to the same registry and their indicator to the app's controller, and serve no routes.
@Module({
  imports: [
    PrometheusModule.register(),
    TerminusModule,
    ConveyorModule.forRoot({ isGlobal: false }),
    ConveyorHealthModule.forRoot({ path: false }),
    ConveyorMetricsModule.forRoot({ path: false }),
  ],
  controllers: [HealthController, WidgetDriver],
})
export class AppModule {}
