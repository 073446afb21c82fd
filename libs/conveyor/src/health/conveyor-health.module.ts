import { ConfigurableModuleAsyncOptions, DynamicModule, Module } from '@nestjs/common';
import { endpointModuleClass } from '../module/endpoint-module.builder';
import { TerminusModule } from '@nestjs/terminus';
import { ConveyorHealthController } from './conveyor-health.controller';
import { CONVEYOR_HEALTH_OPTIONS } from './conveyor-health.constants';
import { ConveyorHealthModuleExtras, ConveyorHealthOptions } from './conveyor-health.options';
import { ConveyorHealthIndicator, ConveyorHealthIndicators } from './conveyor.health';

const ConfigurableModuleClass = endpointModuleClass<ConveyorHealthOptions>(
  CONVEYOR_HEALTH_OPTIONS,
  'health',
  ConveyorHealthController,
  'ConveyorHealthProbes',
);

/** What `forRoot` takes: the probe limits, `path` and `isGlobal`. */
export type ConveyorHealthModuleOptions = ConveyorHealthOptions & ConveyorHealthModuleExtras;
/** What `forRootAsync` takes: `useFactory`/`useClass`/`useExisting` for the limits, `imports`, `inject`, `path` and `isGlobal`. */
export type ConveyorHealthModuleAsyncOptions = ConfigurableModuleAsyncOptions<ConveyorHealthOptions> &
  ConveyorHealthModuleExtras;

/** The module `forRoot`/`forRootAsync` configure; the public class below only hands it out. */
@Module({
  imports: [TerminusModule],
  providers: [ConveyorHealthIndicators, ConveyorHealthIndicator],
  exports: [ConveyorHealthIndicator],
})
class ConveyorHealthCoreModule extends ConfigurableModuleClass {}

/**
 * Kubernetes probes on the transport's live state, and {@link ConveyorHealthIndicator} for an app's
 * own Terminus controller. Works whether or not `ConveyorModule` is global.
 *
 * - `ConveyorHealthModule.forRoot()`: `/health/live`, `/health/ready` and `/health`.
 * - `forRoot({ path: 'conveyor/health' })`: the same under another path, beside the app's own `/health`.
 * - `forRoot({ path: false })`: no routes; inject `ConveyorHealthIndicator` into the app's controller.
 * - `forRootAsync({ useFactory, inject, imports })`: the probe limits from configuration.
 *
 * Importing the class itself (`imports: [ConveyorHealthModule]`) is `forRoot()`.
 */
@Module({ imports: [ConveyorHealthCoreModule.forRoot({})], exports: [ConveyorHealthCoreModule] })
export class ConveyorHealthModule {
  /** The probes at `path` (default `health`) with the given limits. */
  static forRoot(options: ConveyorHealthModuleOptions = {}): DynamicModule {
    return ConveyorHealthCoreModule.forRoot(options);
  }

  /** The probes at `path` (default `health`), with limits made by a factory, class or existing provider. */
  static forRootAsync(options: ConveyorHealthModuleAsyncOptions): DynamicModule {
    return ConveyorHealthCoreModule.forRootAsync(options);
  }
}
