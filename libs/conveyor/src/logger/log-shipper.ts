import { Inject, Injectable, Logger } from '@nestjs/common';
import type { NatsConnection } from 'nats';
import { CONVEYOR_CONFIG } from '../module/conveyor.constants';
import { NO_TRACE_IDS, TraceIds, activeTraceIds, loadTracing } from '../tracing/optional-tracing';
import type { ConveyorConfig } from '../module/conveyor.options';
import { maskDeep } from '../security/redact';
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
import type * as LokiSinkModule from './sinks/loki.sink';

/**
 * What a line's frame holds beyond its message: the Log JSON's run fields and keys, the stamp, the
 * `Nats-Msg-Id` header. Driver and pipeline names are short in practice; escapes that lengthen a
 * message are caught line by line by the sink.
 */
const LINE_FRAME_BYTES = 1024;

/**
 * Values `mask()`ed outside any run, at most: each is looked for in every later line, and a caller
 * masking per request (outside a run) would otherwise slow every line of the process without end.
 */
export const MAX_PROCESS_MASKS = 1000;

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
  private legacy?: LegacyLiveLogSink;
  /** `logs.maxLineBytes`, lowered to what one message of the connected server can carry. */
  private maxLineBytes: number;
  private readonly log = new Logger('DriverLogger');
  private readonly counts = { lines: 0, late: 0, split: 0, truncated: 0 };
  private readonly budget: LogBudget;
  private readonly streamLimiter: ProcessLogLimiter;
  /** The entry handed to the sinks, filled anew for each line; in use while they take one. */
  private readonly entry: LogEntry = blankEntry(undefined);
  private entryInUse = false;
  /** Values masked outside any run (`DriverLogger.mask()` at startup…): hidden in every later line. */
  private readonly processSecrets = new Set<string>();
  /** `processSecrets`, longest first (sorted once per `mask()` call, not per line). */
  private processMaskList?: string[];

  constructor(@Inject(CONVEYOR_CONFIG) private readonly config: ConveyorConfig) {
    const { logs } = config;
    this.maxLineBytes = logs.maxLineBytes;
    this.budget = new LogBudget(logs.maxTotalBytes);
    this.streamLimiter = new ProcessLogLimiter(logs.processLogBytesPerSecond);
    loadTracing();
    loadProcessLog();
    if (config.loki) {
      // Loaded only by a driver that ships to Loki.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { LokiLogSink } = require('./sinks/loki.sink') as typeof LokiSinkModule;
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
   * connection (the old one was closed for good) carries them on: lines queued or unanswered on
   * the old one are sent over it, and every line stays counted in the same sink's stats.
   */
  attach(nc: NatsConnection): void {
    this.fitLinesTo(nc.info?.max_payload);
    if (this.conveyor) this.conveyor.use(nc);
    else if (this.config.logs.conveyor) {
      this.conveyor = new ConveyorLogSink(nc, this.config.logs, this.budget, this.log);
      this.sinks.push(this.conveyor);
    }
    if (this.legacy) this.legacy.use(nc);
    else if (this.config.logs.legacySubject) {
      this.legacy = new LegacyLiveLogSink(nc, this.log);
      this.sinks.push(this.legacy);
    }
  }

  /**
   * Lines are split (or truncated) to fit one message of the server: a `logs.maxLineBytes` above
   * its `max_payload` would only make the sink drop every long line whole.
   */
  private fitLinesTo(maxPayload: number | undefined): void {
    const configured = this.config.logs.maxLineBytes;
    const fits = maxPayload === undefined ? configured : Math.max(64, maxPayload - LINE_FRAME_BYTES);
    const next = Math.min(configured, fits);
    if (next < configured && next !== this.maxLineBytes)
      this.log.warn(
        `logs.maxLineBytes (${configured}) does not fit the server's max_payload (${maxPayload} bytes): ` +
          `lines are split at ${next} bytes (lower logs.maxLineBytes / CONVEYOR_LOG_MAX_LINE_BYTES to silence this)`,
      );
    this.maxLineBytes = next;
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
    const { maxLineBytes } = this;
    const { oversize } = this.config.logs;
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
        if (!binding) return this.maskProcessWide(values);
        for (const v of values) if (typeof v === 'string' && v) binding.secrets.add(v);
        // Longest first, so a secret containing another is hidden whole; sorted once, not per line.
        if (binding.secrets.size > 0)
          binding.maskList = [...binding.secrets].sort((a, b) => b.length - a.length);
      },
      counts: () => this.countsOf(binding),
    };
  }

  /**
   * `mask()` outside a run: the values are hidden from every later line of this logger, in runs or
   * not, from results and dead letters, and from what the driver's redactor cleans (errors, `/health`).
   * Process-wide rather than ignored: a value read at startup is exactly what must never be printed,
   * and masking too much cannot leak. @throws Error past MAX_PROCESS_MASKS values.
   */
  private maskProcessWide(values: readonly string[]): void {
    const fresh = values.filter((v) => typeof v === 'string' && v !== '' && !this.processSecrets.has(v));
    if (fresh.length === 0) return;
    if (this.processSecrets.size + fresh.length > MAX_PROCESS_MASKS)
      throw new Error(
        `DriverLogger.mask() outside a run: more than ${MAX_PROCESS_MASKS} values would be masked process-wide, ` +
          'each looked for in every line; mask a per-run value inside its run (ctx.logger.mask()) instead',
      );
    for (const v of fresh) this.processSecrets.add(v);
    this.processMaskList = [...this.processSecrets].sort((a, b) => b.length - a.length);
    this.config.redactor.add(...fresh);
  }

  /**
   * Masks a run's text wherever it goes (results, dead letters): its `mask()` values, those masked
   * outside any run, then `logs.mask` (which also hides the driver's configured secrets).
   */
  maskText(binding: RunBinding | undefined, text: string): string {
    let out = binding?.maskList ? maskSecrets(text, binding.maskList) : text;
    if (this.processMaskList) out = maskSecrets(out, this.processMaskList);
    if (this.config.logs.mask) out = this.config.logs.mask(out);
    return out;
  }

  /**
   * The fields as every sink and the process log get them: strings masked at any depth, Errors as
   * name, message, stack and cause, cycles and oversize values cut (see maskDeep). Copy on write:
   * fields that need nothing done are handed on as they are, so a line with no fields or only
   * clean primitive ones allocates nothing here; only object values are walked.
   */
  private maskFields(binding: RunBinding | undefined, fields?: LogFields): LogFields | undefined {
    if (!fields) return fields;
    const masking =
      binding?.maskList !== undefined ||
      this.processMaskList !== undefined ||
      this.config.logs.mask !== undefined;
    let out: LogFields | undefined;
    for (const key in fields) {
      const value = fields[key];
      let safe: unknown;
      if (typeof value === 'string') {
        if (!masking) continue;
        safe = this.maskText(binding, value);
      } else if ((typeof value === 'object' && value !== null) || typeof value === 'bigint') {
        // Without anything to mask an object is still walked: Errors, cycles and size need it.
        safe = maskDeep(value, masking ? this.maskerFor(binding) : undefined);
      } else continue;
      if (safe === value) continue;
      out ??= { ...fields };
      out[key] = safe;
    }
    return out ?? fields;
  }

  /**
   * `maskText` bound to `binding`, for values inside fields. Made here, not in maskFields: a closure
   * there would make every call allocate its context, also for a line with only clean strings.
   */
  private maskerFor(binding: RunBinding | undefined): (text: string) => string {
    return (text) => this.maskText(binding, text);
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
