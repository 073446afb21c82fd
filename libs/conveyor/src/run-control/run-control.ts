import { Inject, Injectable } from '@nestjs/common';
import { CONVEYOR_CONFIG } from '../module/conveyor.constants';
import type { ConveyorConfig } from '../module/conveyor.options';
import type { RunProgress } from '../protocol';
import { progressReports, publishCancel } from './run-control.nats';
import { ConveyorStrategy } from '../transport/conveyor.strategy';

/**
 * Run control: cancel a run from any process, watch a run's progress. Inject it anywhere in an app
 * that imports `ConveyorModule` (it uses the transport's NATS connection).
 */
@Injectable()
export class RunControl {
  constructor(
    @Inject(ConveyorStrategy) private readonly strategy: ConveyorStrategy,
    @Inject(CONVEYOR_CONFIG) private readonly config: ConveyorConfig,
  ) {}

  /**
   * Cancels run `runId` with `reason`: the replica running it aborts `ctx.signal` (a
   * `RunCancelledError`) and publishes the failure result `cancelled: <reason>`; a step of the run
   * that starts later (within `cancelTtlMs`) is cancelled as it starts. Resolves once published.
   * @returns whether the cancel is also remembered for runs not started yet (needs JetStream KV).
   */
  async cancel(runId: string, reason = 'cancelled by request'): Promise<{ remembered: boolean }> {
    await this.strategy.whenConsuming();
    return publishCancel(this.strategy.unwrap(), runId, reason, this.config.cancelTtlMs);
  }

  /** The progress reports of run `runId` as they are published (throttled at the source), until `signal` aborts. */
  async *watchProgress(runId: string, signal?: AbortSignal): AsyncGenerator<RunProgress> {
    await this.strategy.whenConsuming();
    yield* progressReports(this.strategy.unwrap(), runId, signal);
  }
}
