import type { Registry } from 'prom-client';

/** What `ConveyorMetricsModule.forRoot()` / `forRootAsync({ useFactory })` configure. */
export interface ConveyorMetricsOptions {
  /**
   * Where the metrics live. Default: prom-client's global registry, the one
   * `@willsoto/nestjs-prometheus` serves, so an app's existing `/metrics` shows them too. Give each
   * app its own `new Registry()` when several run in one process (tests).
   */
  registry?: Registry;
  /**
   * prom-client's process metrics (CPU, memory, event loop) in the registry. Default true, and
   * never twice: skipped when the registry has them already (`PrometheusModule.register()` put them
   * there), so the module works beside an app's own Prometheus setup.
   */
  defaultMetrics?: boolean;
}

/** The module's static settings, beside the options of `forRoot` and `forRootAsync`. */
export interface ConveyorMetricsModuleExtras {
  /**
   * Where the registry is served. Default `metrics` (`GET /metrics`). `false` serves nothing: for
   * an app whose own endpoint (`PrometheusModule.register()`) already serves the same registry.
   */
  path?: string | false;
  /** Make the registry (`CONVEYOR_METRICS_REGISTRY`) injectable in every module. Default false. */
  isGlobal?: boolean;
}
