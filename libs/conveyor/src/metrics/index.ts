/**
 * `@conveyor-ci/nestjs/metrics`: `/metrics` on @willsoto/nestjs-prometheus and prom-client. A subpath
 * of its own, so an app without metrics needs neither installed.
 */
export { ConveyorMetricsModule, type ConveyorMetricsOptions } from './conveyor-metrics.module';
export { CONVEYOR_METRICS_REGISTRY } from './conveyor-metrics.constants';
