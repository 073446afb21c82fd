import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { ConveyorModuleOptions } from './conveyor.options';

export const {
  ConfigurableModuleClass: ConfigurableConveyorModule,
  MODULE_OPTIONS_TOKEN: CONVEYOR_MODULE_OPTIONS,
  OPTIONS_TYPE: CONVEYOR_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: CONVEYOR_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<ConveyorModuleOptions>()
  .setClassMethodName('forRoot')
  // Global by default: DriverLogger, ConveyorClient and the strategy are app-wide singletons.
  .setExtras({ isGlobal: true }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
