import { Inject, Module, OnApplicationBootstrap } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { CONVEYOR_CLIENT_CONFIG } from '../client/client.constants';
import { ConveyorClient } from '../client/conveyor.client';
import { DriverLogger } from '../logger/driver-logger';
import { LogShipper } from '../logger/log-shipper';
import { ReconcileExplorer } from '../reconcile/reconcile.explorer';
import { ResourceDriftCheck } from '../resources/definition-drift';
import { RunCancellations } from '../run-control/run-cancellations';
import { RunControl } from '../run-control/run-control';
import { PopTokenSigner } from '../security/pop-token.signer';
import { ConveyorStrategy } from '../transport/conveyor.strategy';
import { CONVEYOR_MODULE_OPTIONS, ConfigurableConveyorModule } from './conveyor-module-definition';
import { CONVEYOR_CONFIG } from './conveyor.constants';
import { ConveyorConfig, ConveyorModuleOptions, resolveConveyorConfig } from './conveyor.options';
import { ConveyorStartupError } from './startup.error';

/**
 * The Conveyor driver runtime. `ConveyorModule.forRoot({ driverName })` or `forRootAsync({ useFactory })`;
 * then `await connectConveyor(app)` in `main.ts` attaches the transport.
 */
@Module({
  // No HttpModule: ConveyorClient makes its HttpService on its first request (axios is loaded by a
  // driver that calls the API only).
  imports: [DiscoveryModule],
  providers: [
    {
      provide: CONVEYOR_CONFIG,
      // Resolved once at startup: invalid configuration stops the app with every problem listed.
      useFactory: (options: ConveyorModuleOptions) => resolveConveyorConfig(options),
      inject: [CONVEYOR_MODULE_OPTIONS],
    },
    {
      provide: CONVEYOR_CLIENT_CONFIG,
      // With API auth on (contract §10.4), every request carries a fresh proof-of-possession JWT,
      // unless the app brings its own `client.authorization`.
      useFactory: (config: ConveyorConfig, signer: PopTokenSigner) =>
        signer.enabled && !config.client.authorization
          ? { ...config.client, authorization: () => signer.authorizationHeader() }
          : config.client,
      inject: [CONVEYOR_CONFIG, PopTokenSigner],
    },
    ConveyorStrategy,
    ConveyorClient,
    LogShipper,
    DriverLogger,
    ReconcileExplorer,
    // `@Reconcile({ spec })` validators compared with the server's definitions at startup.
    ResourceDriftCheck,
    RunCancellations,
    RunControl,
    // API auth off: a signer that says so (`enabled` false), so the client can always inject it.
    {
      provide: PopTokenSigner,
      useFactory: (c: ConveyorConfig) => new PopTokenSigner(c.apiAuth),
      inject: [CONVEYOR_CONFIG],
    },
  ],
  exports: [
    CONVEYOR_CONFIG,
    ConveyorStrategy,
    ConveyorClient,
    DriverLogger,
    LogShipper,
    RunControl,
    PopTokenSigner,
  ],
})
export class ConveyorModule extends ConfigurableConveyorModule implements OnApplicationBootstrap {
  constructor(
    @Inject(ConveyorStrategy) private readonly strategy: ConveyorStrategy,
    @Inject(ReconcileExplorer) private readonly explorer: ReconcileExplorer,
  ) {
    super();
  }

  /** Fails startup for handlers that could never run, instead of an idle driver that looks healthy. */
  onApplicationBootstrap(): void {
    const handlers = this.explorer.explore();
    const misplaced = handlers.filter((h) => !h.inController).map((h) => h.meta.handler);
    if (misplaced.length > 0) {
      throw new ConveyorStartupError(
        `@Reconcile works on controllers only, but ${misplaced.join(', ')} ${misplaced.length > 1 ? 'are' : 'is'} on a provider: ` +
          "list the class in a module's `controllers`.",
      );
    }
    if (handlers.length > 0 && !this.strategy.isAttached) {
      throw new ConveyorStartupError(
        `Found @Reconcile handlers (${handlers.map((h) => h.meta.handler).join(', ')}) but the Conveyor transport was never attached: ` +
          'call `await connectConveyor(app)` in main.ts (it runs app.init() itself) before app.listen().',
      );
    }
  }
}
