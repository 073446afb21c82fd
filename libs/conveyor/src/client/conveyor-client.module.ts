import { ConfigurableModuleBuilder, Module } from '@nestjs/common';
import type { ConveyorClientOptions } from '../module/client.options';
import { CONVEYOR_CLIENT_CONFIG } from './client.constants';
import { ConveyorClient } from './conveyor.client';

const { ConfigurableModuleClass, MODULE_OPTIONS_TOKEN: CONVEYOR_CLIENT_MODULE_OPTIONS } =
  new ConfigurableModuleBuilder<ConveyorClientOptions>()
    .setClassMethodName('forRoot')
    .setExtras({ isGlobal: false }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
    .build();

/**
 * The API client alone, for apps that call the Conveyor API but reconcile nothing (no NATS):
 * `ConveyorClientModule.forRoot({ apiUrl })` or `forRootAsync({ useFactory, inject })`. Options fall
 * back to the environment as in `ConveyorModule`; invalid ones stop startup with every problem listed.
 */
@Module({
  // No HttpModule: the client makes its HttpService on its first request, so axios is loaded by
  // an app that calls the API, not by one that only imports this module.
  providers: [
    // The client resolves the options (env fallbacks, validation) itself.
    { provide: CONVEYOR_CLIENT_CONFIG, useExisting: CONVEYOR_CLIENT_MODULE_OPTIONS },
    ConveyorClient,
  ],
  exports: [ConveyorClient],
})
export class ConveyorClientModule extends ConfigurableModuleClass {}
