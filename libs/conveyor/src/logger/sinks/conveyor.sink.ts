import type { LoggerService } from '@nestjs/common';
import type { JetStreamClient, NatsConnection } from 'nats';
import type { LogConfig } from '../../module/log.options';
import { ConveyorLog, encodeWire, liveLogSubject, logSubject } from '../../protocol';
import { backoffDelay, sleep } from '../../transport/backoff';
import { LogEntry, LogSink, SinkStats, emptySinkStats } from '../log-entry';
import { formatRfc3339Nano, formatUnixSeconds } from '../run-scope';

/** JetStream publishes in flight at once: pipelined, never one awaited round trip per line. */
const WINDOW = 256;
/** A line whose publish keeps failing this long is dropped (counted). */
const RETRY_BUDGET_MS = 60_000;

interface Pending {
  runId: string;
  subject: string;
  bytes: Uint8Array;
  msgId: string;
  firstTry: number;
  attempt: number;
}

/**
 * The Conveyor sink (contract §9.1): the Log JSON to JetStream `logs.{runId}` (stored by the server)
 * and the same bytes to core `live.logs.{runId}.{driver}` (its SSE forwards them verbatim). Unlike Go,
 * the live publish does not depend on the stored one, and publishes are pipelined.
 */
export class ConveyorLogSink implements LogSink {
  readonly name = 'conveyor';
  readonly stats: SinkStats = emptySinkStats();
  private readonly queue: Pending[] = [];
  private inFlight = 0;
  /** Lines of each run not yet stored (queued, in flight or waiting to retry). */
  private readonly unsettled = new Map<string, number>();
  private readonly waiters = new Set<() => void>();
  private readonly stopped = new AbortController();

  constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly config: LogConfig,
    private readonly logger: LoggerService,
  ) {}

  write(entry: LogEntry): void {
    const { binding } = entry;
    const log: ConveyorLog = {
      runid: binding.runId,
      driver: binding.driver,
      pipeline: binding.pipeline,
      timestamp:
        this.config.timestampFormat === 'unix'
          ? formatUnixSeconds(entry.tsNs)
          : formatRfc3339Nano(entry.tsNs),
      message: entry.message,
    };
    const bytes = encodeWire(log);
    try {
      this.nc.publish(liveLogSubject(binding.runId, binding.driver), bytes);
    } catch (err) {
      this.logger.warn(`live log publish failed: ${(err as Error).message}`);
    }
    if (this.stopped.signal.aborted) return void (this.stats.dropped.shutdown += 1);
    if (this.queue.length >= this.config.maxBufferLines) return void (this.stats.dropped.overflow += 1);
    this.track(binding.runId, 1);
    this.queue.push({
      runId: binding.runId,
      subject: logSubject(binding.runId),
      bytes,
      // Stored once even when a publish is retried after a lost PubAck, yet unique per delivery: a
      // retried run, a shutdown rerun or a driver used twice in one pipeline (each its own message)
      // restarts `seq`, and a bare `{run}:{driver}:{seq}` would make JetStream drop its lines.
      msgId: `${binding.runId}:${binding.driver}:${binding.messageId}:${binding.delivery}:${entry.seq}`,
      firstTry: Date.now(),
      attempt: 0,
    });
    this.pump();
  }

  /** True while some of the run's lines are not stored yet. */
  hasUnsettled(runId: string): boolean {
    return this.unsettled.has(runId);
  }

  async flushRun(runId: string, timeoutMs: number): Promise<void> {
    await this.until(() => !this.unsettled.has(runId), timeoutMs);
  }

  async close(timeoutMs: number): Promise<void> {
    await this.until(() => this.unsettled.size === 0, timeoutMs);
    this.stopped.abort();
    const left = [...this.unsettled.values()].reduce((a, b) => a + b, 0);
    this.stats.dropped.shutdown += left;
    this.queue.length = 0;
    this.unsettled.clear();
  }

  private pump(): void {
    while (this.inFlight < WINDOW && this.queue.length > 0) {
      const item = this.queue.shift()!;
      this.inFlight += 1;
      void this.publish(item).finally(() => {
        this.inFlight -= 1;
        this.pump();
      });
    }
  }

  private async publish(item: Pending): Promise<void> {
    for (;;) {
      if (this.stopped.signal.aborted) return;
      try {
        await this.js.publish(item.subject, item.bytes, { msgID: item.msgId, timeout: 5000 });
        this.stats.sent += 1;
        return this.track(item.runId, -1);
      } catch (err) {
        item.attempt += 1;
        if (Date.now() - item.firstTry > RETRY_BUDGET_MS) {
          this.logger.warn(
            `log line ${item.msgId} dropped after ${item.attempt} attempts: ${(err as Error).message}`,
          );
          this.stats.dropped.retries_exhausted += 1;
          return this.track(item.runId, -1);
        }
        await sleep(backoffDelay(item.attempt, 100, 5000), this.stopped.signal);
      }
    }
  }

  private track(runId: string, delta: number): void {
    const n = (this.unsettled.get(runId) ?? 0) + delta;
    if (n > 0) this.unsettled.set(runId, n);
    else this.unsettled.delete(runId);
    if (delta < 0) this.waiters.forEach((wake) => wake());
  }

  private until(done: () => boolean, timeoutMs: number): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const check = () => done() && finish();
      const timer = setTimeout(finish, timeoutMs);
      this.waiters.add(check);
    });
  }
}
