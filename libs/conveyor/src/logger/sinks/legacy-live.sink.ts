import type { LoggerService } from '@nestjs/common';
import type { NatsConnection } from 'nats';
import { legacyLiveLogSubject } from '../../protocol';
import { LogEntry, LogSink, SinkStats, emptySinkStats } from '../log-entry';
import { formatUnixSeconds } from '../run-scope';

/**
 * The seed's live subject (contract §9.3, opt-in): core NATS `driver:{driver}:logs:{runId}` with the
 * payload `["<unix-seconds>","<message>"]`, for consumers written against Conveyor ≤ 0.4.
 */
export class LegacyLiveLogSink implements LogSink {
  readonly name = 'legacy';
  readonly stats: SinkStats = emptySinkStats();

  constructor(
    private nc: NatsConnection,
    private readonly logger: LoggerService,
  ) {}

  /** Publishes over `nc` from now on (the transport dialled anew). */
  use(nc: NatsConnection): void {
    this.nc = nc;
  }

  write(entry: LogEntry): void {
    try {
      this.nc.publish(
        legacyLiveLogSubject(entry.binding.driver, entry.binding.runId),
        JSON.stringify([formatUnixSeconds(entry.timeUs), entry.message]),
      );
      this.stats.sent += 1;
    } catch (err) {
      this.stats.dropped.rejected += 1;
      this.logger.warn(`legacy live log publish failed: ${(err as Error).message}`);
    }
  }

  async close(): Promise<void> {
    /* core publishes leave with the connection's own flush */
  }
}
