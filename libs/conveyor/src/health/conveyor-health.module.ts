import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { ConveyorHealthController } from './conveyor-health.controller';
import { ConveyorHealthIndicators } from './conveyor.health';

/**
 * `/health`, `/health/live` and `/health/ready` for Kubernetes probes, on the transport's live state.
 * Import it next to `ConveyorModule.forRoot()`.
 */
@Module({
  imports: [TerminusModule],
  controllers: [ConveyorHealthController],
  providers: [ConveyorHealthIndicators],
})
export class ConveyorHealthModule {}
