import { Controller, Get, Header, Inject, Res } from '@nestjs/common';
import type { Registry } from 'prom-client';
import { CONVEYOR_METRICS_REGISTRY } from './conveyor-metrics.constants';

/**
 * The Prometheus endpoint, serving the module's registry. The module serves it under its `path`
 * (a subclass per path, since Nest reads a controller's path from its class).
 */
@Controller()
export class ConveyorMetricsController {
  constructor(@Inject(CONVEYOR_METRICS_REGISTRY) private readonly registry: Registry) {}

  @Get()
  @Header('Cache-Control', 'no-store')
  async index(
    @Res({ passthrough: true }) response: { header(name: string, value: string): unknown },
  ): Promise<string> {
    response.header('Content-Type', this.registry.contentType);
    return this.registry.metrics();
  }
}
