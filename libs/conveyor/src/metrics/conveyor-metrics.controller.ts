import { Controller, Get, Inject, Res } from '@nestjs/common';
import { PrometheusController } from '@willsoto/nestjs-prometheus';
import type { Registry } from 'prom-client';
import { CONVEYOR_METRICS_REGISTRY } from './conveyor-metrics.constants';

/** The Prometheus endpoint, serving the module's registry (the global one unless another was given). */
@Controller()
export class ConveyorMetricsController extends PrometheusController {
  constructor(@Inject(CONVEYOR_METRICS_REGISTRY) private readonly registry: Registry) {
    super();
  }

  @Get()
  override async index(
    @Res({ passthrough: true }) response: { header(name: string, value: string): unknown },
  ): Promise<string> {
    response.header('Content-Type', this.registry.contentType);
    return this.registry.metrics();
  }
}
