import { ConfigurableModuleAsyncOptions, DynamicModule, Module } from '@nestjs/common';
import { endpointModuleClass } from '../module/endpoint-module.builder';
import { register as globalRegistry } from 'prom-client';
import { CONVEYOR_METRICS_OPTIONS, CONVEYOR_METRICS_REGISTRY } from './conveyor-metrics.constants';
import { ConveyorMetricsController } from './conveyor-metrics.controller';
import { ConveyorMetricsModuleExtras, ConveyorMetricsOptions } from './conveyor-metrics.options';
import { ConveyorMetrics } from './conveyor.metrics';

const ConfigurableModuleClass = endpointModuleClass<ConveyorMetricsOptions>(
  CONVEYOR_METRICS_OPTIONS,
  'metrics',
  ConveyorMetricsController,
  'ConveyorMetricsEndpoint',
);

/** What `forRoot` (and `register`) take: the registry, default metrics, `path` and `isGlobal`. */
export type ConveyorMetricsModuleOptions = ConveyorMetricsOptions & ConveyorMetricsModuleExtras;
/** What `forRootAsync` takes: `useFactory`/`useClass`/`useExisting` for the options, `imports`, `inject`, `path` and `isGlobal`. */
export type ConveyorMetricsModuleAsyncOptions = ConfigurableModuleAsyncOptions<ConveyorMetricsOptions> &
  ConveyorMetricsModuleExtras;

/**
 * The Conveyor driver's Prometheus metrics (`conveyor_*`) in a prom-client registry, served at
 * `/metrics`. Needs no `@willsoto/nestjs-prometheus`, and works beside it: with the default
 * (global) registry, `PrometheusModule.register()`'s endpoint shows the Conveyor metrics too
 * (`forRoot({ path: false })` then serves nothing of its own), and prom-client's process metrics are
 * registered only when the registry has none. Works whether or not `ConveyorModule` is global.
 */
@Module({
  providers: [
    {
      provide: CONVEYOR_METRICS_REGISTRY,
      useFactory: (options: ConveyorMetricsOptions) => options.registry ?? globalRegistry,
      inject: [CONVEYOR_METRICS_OPTIONS],
    },
    ConveyorMetrics,
  ],
  exports: [CONVEYOR_METRICS_REGISTRY],
})
export class ConveyorMetricsModule extends ConfigurableModuleClass {
  /** The metrics in `options.registry` (default: prom-client's global one), served at `path` (default `metrics`). */
  static override forRoot(options: ConveyorMetricsModuleOptions = {}): DynamicModule {
    return super.forRoot(options);
  }

  /** The same with options made by a factory, class or existing provider (`path` and `isGlobal` beside them). */
  static override forRootAsync(options: ConveyorMetricsModuleAsyncOptions): DynamicModule {
    return super.forRootAsync(options);
  }

  /**
   * `forRoot(options)`, kept for apps written against 0.1: it was global, so it still is unless
   * `isGlobal` says otherwise.
   *
   * @deprecated Use {@link ConveyorMetricsModule.forRoot}.
   */
  static register(options: ConveyorMetricsModuleOptions = {}): DynamicModule {
    return this.forRoot({ isGlobal: true, ...options });
  }
}
