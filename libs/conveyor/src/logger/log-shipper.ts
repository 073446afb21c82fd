import { Inject, Injectable, Logger } from '@nestjs/common';
import type { NatsConnection } from 'nats';
import { CONVEYOR_CONFIG } from '../module/conveyor.constants';
import { NO_TRACE_IDS, TraceIds, activeTraceIds, loadTracing } from '../tracing/optional-tracing';
import type { ConveyorConfig } from '../module/conveyor.options';
import { createLineStream } from './line-stream';
import { limitLine, maskSecrets } from './line-limits';
import { LogBudget } from './log-budget';
import { ProcessLogLimiter } from './process-log.limiter';
import { LogEntry, LogLevel, LogSink, SinkStats } from './log-entry';
import { loadProcessLog, processLogOf, writeProcessLog } from './process-log.adapter';
import type { LogFields, LogStreamOptions, RunLogger } from './run-logger';
import { RunBinding, advanceClock } from './run-scope';
import { ConveyorLogSink } from './sinks/conveyor.sink';
import { LegacyLiveLogSink } from './sinks/legacy-live.sink';
import { LokiLogSink } from './sinks/loki.sink';

/** Whether a line is also written to the process log: always, never, or within the step-output rate. */
type ProcessLogCopy = 'always' | 'never' | 'limited';

/** Counters of the DriverLogger, for the metrics endpoint. */
export interface LogStats {
  /** Lines of runs (after splitting) handed to the sinks. */
  lines: number;
  /** Lines logged after their run's result was published (still shipped). */
  late: number;
  /** Oversize lines split, and pieces they became. */
  split: number;
  truncated: number;
  /** Step-output lines (`logger.stream()`) left out of the process log by its byte rate. */
  processLogDropped: number;
  /** Bytes buffered across sinks right now, and the logger's budget. */
  bufferedBytes: number;
  budgetBytes: number;
  sinks: Record<string, SinkStats>;
}

/** A run's own log accounting (the reference driver puts it in its result's `data`). */
export interface RunLogCounts {
  /** Lines of the run handed to the sinks. */
  lines: number;
  /** Of those, lines the Conveyor sink could not store (announced by a marker line in the run's log). */
  dropped: number;
}

/** Who wrote a run line: the handler's logger, its step output, or the runtime itself. */
export type LineOrigin = 'call' | 'stream' | 'runtime';

/**
 * Stamps, masks and limits each run line once, then hands it to every sink. Sinks never wait on
 * each other: a hung Loki cannot hold back the Conveyor subjects, and nothing here blocks a run.
 * Everything buffered counts against one byte budget (`logs.maxTotalBytes`).
 */
@Injectable()
export class LogShipper {
  private readonly sinks: LogSink[] = [];
  private conveyor?: ConveyorLogSink;
  private attachedTo?: NatsConnection;
  private readonly log = new Logger('DriverLogger');
  private readonly counts = { lines: 0, late: 0, split: 0, truncated: 0 };
  private readonly budget: LogBudget;
  private readonly streamLimiter: ProcessLogLimiter;
  /** The entry handed to the sinks, filled anew for each line; in use while they take one. */
  private readonly entry: LogEntry = blankEntry(undefined);
  private entryInUse = false;

  constructor(@Inject(CONVEYOR_CONFIG) private readonly config: ConveyorConfig) {
    const { logs } = config;
    this.budget = new LogBudget(logs.maxTotalBytes);
    this.streamLimiter = new ProcessLogLimiter(logs.processLogBytesPerSecond);
    loadTracing();
    loadProcessLog();
    if (config.loki) {
      this.sinks.push(
        new LokiLogSink(
          config.loki,
          logs.maxBufferLines,
          new LogBudget(logs.maxBufferBytes, this.budget),
          this.log,
          () => this.conveyor?.busy ?? false,
        ),
      );
    }
  }

  /**
   * Adds the NATS sinks once the transport is connected (runs only happen after that). A new
   * connection (the old one was closed for good) replaces them; lines still buffered in the old
   * ones are counted as dropped at shutdown.
   */
  attach(nc: NatsConnection): void {
    if (this.attachedTo && this.attachedTo !== nc) {
      const old = this.sinks.filter((s) => s === this.conveyor || s.name === 'legacy');
      for (const sink of old) this.sinks.splice(this.sinks.indexOf(sink), 1);
      this.conveyor = undefined;
      for (const sink of old) void sink.close(0);
    }
    this.attachedTo = nc;
    if (this.config.logs.conveyor && !this.conveyor) {
      this.conveyor = new ConveyorLogSink(nc, this.config.logs, this.budget, this.log);
      this.sinks.push(this.conveyor);
    }
    if (this.config.logs.legacySubject && !this.sinks.some((s) => s.name === 'legacy')) {
      this.sinks.push(new LegacyLiveLogSink(nc, this.log));
    }
  }

  /**
   * Logs for `binding`'s run, or to the process log only when there is no run. `origin` `stream`
   * marks step output (`logger.stream()`), which stays out of the process log unless configured;
   * `runtime` marks a line the runtime adds to the run's log that the process log already has.
   */
  write(
    binding: RunBinding | undefined,
    level: LogLevel,
    message: unknown,
    fields?: LogFields,
    origin: LineOrigin = 'call',
  ): void {
    const text = typeof message === 'string' ? message : String(message);
    const { maxLineBytes, oversize } = this.config.logs;
    if (!binding) {
      writeProcessLog(
        'DriverLogger',
        level,
        this.maskText(undefined, text),
        this.maskFields(undefined, fields) ?? {},
      );
      return;
    }
    const masked = this.maskText(binding, text);
    const safeFields = this.maskFields(binding, fields);
    const ids = binding.traced ? activeTraceIds() : NO_TRACE_IDS;
    const fromStream = origin === 'stream';
    // Step output reaches the process log only when configured, and rate-limited then.
    const processLog: ProcessLogCopy =
      origin === 'call' ? 'always' : fromStream && this.config.logs.streamsToProcessLog ? 'limited' : 'never';
    // A UTF-16 unit is at most 3 UTF-8 bytes: a short line (nearly all) is one piece, no array made.
    if (masked.length * 3 <= maxLineBytes)
      return this.ship(binding, level, masked, safeFields, ids, processLog);
    const pieces = limitLine(masked, maxLineBytes, oversize);
    if (pieces.length > 1) this.counts.split += 1;
    else if (pieces[0] !== masked) this.counts.truncated += 1;
    for (const piece of pieces) this.ship(binding, level, piece, safeFields, ids, processLog);
  }

  /**
   * One piece of a line: stamped, to every sink, and to the process log as `processLog` says.
   * Arguments, not an object: this runs per line.
   */
  private ship(
    binding: RunBinding,
    level: LogLevel,
    piece: string,
    fields: LogFields | undefined,
    ids: TraceIds,
    processLog: ProcessLogCopy,
  ): void {
    const late = binding.resultSent;
    binding.seq += 1;
    advanceClock(binding);
    // One entry for every line (sinks copy what they keep), unless a sink logs into this run
    // while taking the line (a Nest logger routed to DriverLogger): that line gets its own.
    const nested = this.entryInUse;
    const entry = nested ? blankEntry(binding) : this.entry;
    entry.binding = binding;
    entry.level = level;
    entry.message = piece;
    entry.bytes = Buffer.byteLength(piece);
    entry.fields = fields;
    entry.timeUs = binding.clockUs;
    entry.timeSubNs = binding.clockSubNs;
    entry.seq = binding.seq;
    entry.late = late;
    entry.traceId = ids.traceId;
    entry.spanId = ids.spanId;
    this.counts.lines += 1;
    if (late) this.counts.late += 1;
    this.entryInUse = true;
    for (const sink of this.sinks) sink.write(entry);
    this.entryInUse = nested;
    if (processLog === 'always' || (processLog === 'limited' && this.streamLimiter.allow(piece.length))) {
      const extra = ids.traceId ? { trace_id: ids.traceId, span_id: ids.spanId } : undefined;
      processLogOf(binding)(level, piece, fields, extra, late);
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
        createLineStream((line) =>
          this.write(binding, options.level ?? 'info', line, options.fields, 'stream'),
        ),
      mask: (...values) => {
        if (!binding) return;
        for (const v of values) if (typeof v === 'string' && v) binding.secrets.add(v);
        // Longest first, so a secret containing another is hidden whole; sorted once, not per line.
        if (binding.secrets.size > 0)
          binding.maskList = [...binding.secrets].sort((a, b) => b.length - a.length);
      },
      counts: () => this.countsOf(binding),
    };
  }

  /** Masks a run's text wherever it goes (results, dead letters): its `mask()` values, then `logs.mask`. */
  maskText(binding: RunBinding | undefined, text: string): string {
    let out = binding?.maskList ? maskSecrets(text, binding.maskList) : text;
    if (this.config.logs.mask) out = this.config.logs.mask(out);
    return out;
  }

  private maskFields(binding: RunBinding | undefined, fields?: LogFields): LogFields | undefined {
    if (!fields || (!binding?.maskList && !this.config.logs.mask)) return fields;
    const out: LogFields = {};
    for (const [key, value] of Object.entries(fields)) {
      out[key] = typeof value === 'string' ? this.maskText(binding, value) : value;
    }
    return out;
  }

  private countsOf(binding: RunBinding | undefined): RunLogCounts {
    if (!binding) return { lines: 0, dropped: 0 };
    return { lines: binding.seq, dropped: this.conveyor?.droppedOf(binding.runId) ?? 0 };
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
    const sinks: Record<string, SinkStats> = {};
    for (const sink of this.sinks) sinks[sink.name] = structuredClone(sink.stats);
    if (this.conveyor) sinks['conveyor-live'] = structuredClone(this.conveyor.liveStats);
    return {
      ...this.counts,
      processLogDropped: this.streamLimiter.dropped,
      bufferedBytes: this.budget.usedBytes,
      budgetBytes: this.budget.limitBytes,
      sinks,
    };
  }
}

/** Every field written, in one order: the reused entry and a nested one share their shape. */
function blankEntry(binding: RunBinding | undefined): LogEntry {
  return {
    binding: binding as RunBinding,
    level: 'info',
    message: '',
    bytes: 0,
    fields: undefined,
    timeUs: Number.NaN,
    timeSubNs: 0,
    seq: 0,
    late: false,
    traceId: undefined,
    spanId: undefined,
  };
}
