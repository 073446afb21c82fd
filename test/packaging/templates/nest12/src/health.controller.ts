import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import { ConveyorHealthIndicator } from '@conveyor-ci/nestjs/health';

/** The app's own probes, composing the driver's indicator with whatever else the app checks. */
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly conveyor: ConveyorHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.conveyor.isAlive(), () => this.conveyor.isHealthy('conveyor')]);
  }

  @Get('ready')
  @HealthCheck()
  ready() {
    return this.health.check([() => this.conveyor.isHealthy('conveyor')]);
  }

  @Get('live')
  @HealthCheck()
  live() {
    return this.health.check([() => this.conveyor.isAlive()]);
  }
}
