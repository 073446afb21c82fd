import { Module } from '@nestjs/common';
import { ConveyorModule } from '@conveyor-ci/nestjs';
import { ConveyorHealthModule } from '@conveyor-ci/nestjs/health';
import { ConveyorMetricsModule } from '@conveyor-ci/nestjs/metrics';
import { WidgetDriver } from './widget.driver';

@Module({
  imports: [ConveyorModule.forRoot({}), ConveyorHealthModule.forRoot(), ConveyorMetricsModule.forRoot()],
  controllers: [WidgetDriver],
})
export class AppModule {}
