/**
 * `@conveyor-ci/nestjs/metrics`: the driver's Prometheus metrics on prom-client. A subpath of its
 * own, so an app without metrics needs no prom-client installed.
 */
export {
  ConveyorMetricsModule,
  type ConveyorMetricsModuleOptions,
  type ConveyorMetricsModuleAsyncOptions,
} from './conveyor-metrics.module';
export type { ConveyorMetricsOptions, ConveyorMetricsModuleExtras } from './conveyor-metrics.options';
export { CONVEYOR_METRICS_REGISTRY, CONVEYOR_METRICS_OPTIONS } from './conveyor-metrics.constants';
