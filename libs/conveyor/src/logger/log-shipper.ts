import { Inject, Injectable, Logger } from '@nestjs/common';
import { isSpanContextValid, trace } from '@opentelemetry/api';
import type { NatsConnection } from 'nats';
import { CONVEYOR_CONFIG } from '../module/conveyor.constants';
import type { ConveyorConfig } from '../module/conveyor.options';
import { createLineStream } from './line-stream';
import { limitLine, maskSecrets } from './line-limits';
import { LogLevel, LogSink, SinkStats } from './log-entry';
import { writeProcessLog } from './process-log.adapter';
import type { LogFields, LogStreamOptions, RunLogger } from './run-logger';
import { RunBinding, nextTimestampNs } from './run-scope';
import { ConveyorLogSink } from './sinks/conveyor.sink';
import { LegacyLiveLogSink } from './sinks/legacy-live.sink';
import { LokiLogSink } from './sinks/loki.sink';

/** Counters of the DriverLogger, for the metrics endpoint. */
export interface LogStats {
  /** Lines of runs (after splitting) handed to the sinks. */
  lines: number;
  /** Lines logged after their run's result was published (still shipped). */
  late: number;
  /** Oversize lines split, and pieces they became. */
  split: number;
  truncated: number;
  sinks: Record<string, SinkStats>;
}

/**
 * Stamps, masks and limits each run line once, then hands it to every sink. Sinks never wait on
 * each other: a hung Loki cannot hold back the Conveyor subjects, and nothing here blocks a run.
 */
@Injectable()
export class LogShipper {
  private readonly sinks: LogSink[] = [];
  private conveyor?: ConveyorLogSink;
  private readonly log = new Logger('DriverLogger');
  private readonly counts = { lines: 0, late: 0, split: 0, truncated: 0 };

  constructor(@Inject(CONVEYOR_CONFIG) private readonly config: ConveyorConfig) {
    if (config.loki) this.sinks.push(new LokiLogSink(config.loki, config.logs.maxBufferLines, this.log));
  }

  /** Adds the NATS sinks once the transport is connected (runs only happen after that). */
  attach(nc: NatsConnection): void {
    if (this.config.logs.conveyor && !this.conveyor) {
      this.conveyor = new ConveyorLogSink(nc, nc.jetstream(), this.config.logs, this.log);
      this.sinks.push(this.conveyor);
    }
    if (this.config.logs.legacySubject && !this.sinks.some((s) => s.name === 'legacy')) {
      this.sinks.push(new LegacyLiveLogSink(nc, this.log));
    }
  }

  /** Logs for `binding`'s run, or to the process log only when there is no run. */
  write(binding: RunBinding | undefined, level: LogLevel, message: unknown, fields?: LogFields): void {
    const text = typeof message === 'string' ? message : String(message);
    const { mask, maxLineBytes, oversize } = this.config.logs;
    if (!binding) {
      writeProcessLog('DriverLogger', level, mask ? mask(text) : text, fields ?? {});
      return;
    }
    let masked = maskSecrets(text, binding.secrets);
    if (mask) masked = mask(masked);
    const pieces = limitLine(masked, maxLineBytes, oversize);
    if (pieces.length > 1) this.counts.split += 1;
    else if (pieces[0] !== masked) this.counts.truncated += 1;
    const late = binding.resultSent;
    const span = trace.getActiveSpan()?.spanContext();
    const ids = span && isSpanContextValid(span) ? { traceId: span.traceId, spanId: span.spanId } : {};
    const runFields = {
      run_id: binding.runId,
      driver: binding.driver,
      event: binding.event,
      resource: binding.resource,
      resource_type: binding.resourceType,
      ...(ids.traceId ? { trace_id: ids.traceId, span_id: ids.spanId } : {}),
      ...fields,
    };
    for (const piece of pieces) {
      binding.seq += 1;
      const entry = {
        binding,
        level,
        message: piece,
        fields,
        tsNs: nextTimestampNs(binding),
        seq: binding.seq,
        late,
        ...ids,
      };
      this.counts.lines += 1;
      if (late) this.counts.late += 1;
      for (const sink of this.sinks) sink.write(entry);
      writeProcessLog(binding.driver, level, piece, late ? { ...runFields, late: true } : runFields);
    }
  }

  /** A logger bound to `binding` (or to no run). */
  loggerFor(binding: RunBinding | undefined): RunLogger {
    return {
      debug: (m, f) => this.write(binding, 'debug', m, f),
      info: (m, f) => this.write(binding, 'info', m, f),
      warn: (m, f) => this.write(binding, 'warn', m, f),
      error: (m, f) => this.write(binding, 'error', m, f),
      stream: (options: LogStreamOptions = {}) =>
        createLineStream((line) => this.write(binding, options.level ?? 'info', line, options.fields)),
      mask: (...values) => values.forEach((v) => typeof v === 'string' && v && binding?.secrets.add(v)),
    };
  }

  /** True while the Conveyor sink still has lines of the run to store. */
  hasUnflushed(runId: string): boolean {
    return this.conveyor?.hasUnsettled(runId) ?? false;
  }

  /** Waits until the run's lines are stored by the Conveyor sink (so they precede its result). */
  async flushRun(runId: string): Promise<void> {
    await this.conveyor?.flushRun(runId, this.config.logs.flushTimeoutMs);
  }

  /** Flushes every sink up to `flushTimeoutMs`; what is left is counted as dropped at shutdown. */
  async close(): Promise<void> {
    await Promise.all(this.sinks.map((sink) => sink.close(this.config.logs.flushTimeoutMs)));
  }

  get stats(): LogStats {
    return {
      ...this.counts,
      sinks: Object.fromEntries(this.sinks.map((s) => [s.name, structuredClone(s.stats)])),
    };
  }
}
