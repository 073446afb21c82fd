/** The prom-client Registry the Conveyor metrics (and `/metrics`) use. */
export const CONVEYOR_METRICS_REGISTRY = Symbol('CONVEYOR_METRICS_REGISTRY');
