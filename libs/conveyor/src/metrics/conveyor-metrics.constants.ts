/** The prom-client Registry the Conveyor metrics (and the module's endpoint) use. */
export const CONVEYOR_METRICS_REGISTRY = Symbol('CONVEYOR_METRICS_REGISTRY');

/** The {@link ConveyorMetricsOptions} given to `forRoot()` or made by `forRootAsync()`'s factory. */
export const CONVEYOR_METRICS_OPTIONS = Symbol('CONVEYOR_METRICS_OPTIONS');
