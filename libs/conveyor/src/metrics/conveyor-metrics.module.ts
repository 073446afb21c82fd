import { DynamicModule, Module } from '@nestjs/common';
import { PrometheusModule } from '@willsoto/nestjs-prometheus';
import { Registry, register as globalRegistry } from 'prom-client';
import { ConveyorMetricsController } from './conveyor-metrics.controller';
import { CONVEYOR_METRICS_REGISTRY } from './conveyor-metrics.constants';
import { ConveyorMetrics } from './conveyor.metrics';

/** Options of {@link ConveyorMetricsModule}. */
export interface ConveyorMetricsOptions {
  /**
   * Where the metrics live. Default: prom-client's global registry. Give each app its own
   * `new Registry()` when several run in one process (tests), or their metric names clash.
   */
  registry?: Registry;
  /** Default `/metrics`. */
  path?: string;
  /** prom-client's process metrics (CPU, memory, event loop). Default true. */
  defaultMetrics?: boolean;
}

/** `/metrics` for Prometheus (@willsoto/nestjs-prometheus) with the Conveyor driver's metrics. */
@Module({})
export class ConveyorMetricsModule {
  static register(options: ConveyorMetricsOptions = {}): DynamicModule {
    const registry = options.registry ?? globalRegistry;
    return {
      module: ConveyorMetricsModule,
      // Global so the Prometheus module's controller can inject the registry.
      global: true,
      imports: [
        PrometheusModule.register({
          path: options.path ?? '/metrics',
          controller: ConveyorMetricsController,
          defaultMetrics: { enabled: options.defaultMetrics ?? true, config: { register: registry } },
        }),
      ],
      providers: [{ provide: CONVEYOR_METRICS_REGISTRY, useValue: registry }, ConveyorMetrics],
      exports: [CONVEYOR_METRICS_REGISTRY],
    };
  }
}
