/**
 * What `ConveyorHealthModule.forRoot()` / `forRootAsync({ useFactory })` configure: the probes' limits.
 * Where the probes are served (`path`) and `isGlobal` are given beside them, never by a factory,
 * because Nest fixes a controller's routes before any factory runs.
 */
export interface ConveyorHealthOptions {
  /** How long a probe waits for NATS or Loki before answering down. Default 2000 ms. */
  probeTimeoutMs?: number;
  /** The event loop counts as stuck (liveness down) above this p99 delay. Default 5000 ms. */
  maxEventLoopDelayMs?: number;
}

/** The module's static settings, beside the options of `forRoot` and `forRootAsync`. */
export interface ConveyorHealthModuleExtras {
  /**
   * Where `live`, `ready` and the combined probe are served: `health` (the default) serves
   * `/health/live`, `/health/ready` and `/health`. `false` serves nothing: the app's own Terminus
   * controller composes {@link ConveyorHealthIndicator} instead.
   */
  path?: string | false;
  /** Make {@link ConveyorHealthIndicator} injectable in every module. Default false. */
  isGlobal?: boolean;
}

/** Probe limits when the options leave them out. */
export const HEALTH_DEFAULTS = { probeTimeoutMs: 2000, maxEventLoopDelayMs: 5000 } as const;
