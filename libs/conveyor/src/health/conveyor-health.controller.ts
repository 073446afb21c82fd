import { Controller, Get, HttpException, HttpStatus } from '@nestjs/common';
import { HealthCheckResult, HealthCheckService, HealthIndicatorResult } from '@nestjs/terminus';
import { ConveyorHealthIndicators } from './conveyor.health';

/**
 * `<path>/live` for the liveness probe (the process and its event loop: stays up during a drain),
 * `<path>/ready` for readiness (NATS connected and the consumer bound: 503 while binding,
 * disconnected or draining), `<path>` for both. Optional dependencies (Loki) appear in the body
 * with their status but never turn a probe red. The module serves it under its `path` (a subclass
 * per path, since Nest reads a controller's path from its class).
 */
@Controller()
export class ConveyorHealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: ConveyorHealthIndicators,
  ) {}

  @Get('live')
  live(): HealthCheckResult {
    // Not through HealthCheckService: Terminus answers 503 to every check once shutdown begins, and a
    // draining driver is alive. A failed liveness probe would make Kubernetes kill it mid-drain.
    const loop = this.indicators.eventLoop();
    const up = loop.event_loop.status === 'up';
    const result: HealthCheckResult = {
      status: up ? 'ok' : 'error',
      info: up ? loop : {},
      error: up ? {} : loop,
      details: loop,
    };
    if (!up) throw new HttpException(result, HttpStatus.SERVICE_UNAVAILABLE);
    return result;
  }

  @Get('ready')
  ready(): Promise<HealthCheckResult> {
    return this.check([() => this.indicators.nats(), () => this.indicators.consumer()]);
  }

  @Get()
  all(): Promise<HealthCheckResult> {
    return this.check([
      () => this.indicators.eventLoop(),
      () => this.indicators.nats(),
      () => this.indicators.consumer(),
    ]);
  }

  private async check(
    required: (() => HealthIndicatorResult | Promise<HealthIndicatorResult>)[],
  ): Promise<HealthCheckResult> {
    const [optional, outcome] = await Promise.all([
      this.indicators.loki(),
      this.health.check(required).then(
        (result) => ({ ok: true as const, result }),
        (err: unknown) => {
          if (err instanceof HttpException)
            return { ok: false as const, result: err.getResponse() as HealthCheckResult };
          throw err;
        },
      ),
    ]);
    const result = { ...outcome.result, details: { ...outcome.result.details, ...optional } };
    if (optional) {
      const [key, value] = Object.entries(optional)[0];
      // Listed where it belongs by its own status, without changing the overall one.
      if (value.status === 'up') result.info = { ...result.info, [key]: value };
      else result.error = { ...result.error, [key]: value };
    }
    if (!outcome.ok) throw new HttpException(result, HttpStatus.SERVICE_UNAVAILABLE);
    return result;
  }
}
