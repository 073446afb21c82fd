import { Module } from '@nestjs/common';
import { ConveyorModule } from '@conveyor-ci/nestjs';
import { ConveyorHealthModule } from '@conveyor-ci/nestjs/health';
import { ConveyorMetricsModule } from '@conveyor-ci/nestjs/metrics';
import { WidgetDriver } from './widget.driver.js';

@Module({
  imports: [ConveyorModule.forRoot({}), ConveyorHealthModule, ConveyorMetricsModule.register()],
  controllers: [WidgetDriver],
})
export class AppModule {}
