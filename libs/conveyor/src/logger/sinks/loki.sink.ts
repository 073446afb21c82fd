import type { LoggerService } from '@nestjs/common';
import { promisify } from 'node:util';
import { setImmediate } from 'node:timers/promises';
import { constants, gzip } from 'node:zlib';
import type { LokiConfig } from '../../module/log.options';
import { backoffDelay, sleep } from '../../util/backoff';
import { LogBudget } from '../log-budget';
import { HttpAnswer, fetchWithin } from './fetch-within';
import { lokiAuthHeaders } from './loki-auth';
import { LogEntry, LogSink, SinkStats, emptySinkStats } from '../log-entry';
import { RunBinding, formatUnixNanos } from '../run-scope';

const gzipAsync = promisify(gzip);
/**
 * zlib's fastest level: log text still shrinks about 5x, at a fifth of the default level's CPU,
 * which a flooded run would otherwise take from the NATS server on a small machine.
 */
const GZIP_OPTIONS = { level: constants.Z_BEST_SPEED };
/** Attempts per batch on 429/5xx/network errors before it is dropped (Promtail's default). */
const MAX_ATTEMPTS = 10;

/**
 * A buffered line, as little as possible: its push entry is made when its batch is sent. Copied
 * from the LogEntry, which the shipper reuses for the next line.
 */
interface Buffered {
  stream: LokiStream;
  message: string;
  timeUs: number;
  timeSubNs: number;
  traceId: string | undefined;
  spanId: string | undefined;
  bytes: number;
}

interface LokiStream {
  /** The labels as JSON: the stream's key, and its `stream` in a push. */
  key: string;
  /** Structured metadata of every line of the run, as JSON (made once, not per line). */
  metadata: Record<string, string>;
  metadataJson: string;
}

/** How often a push waiting behind the Conveyor sink looks again. */
const BEHIND_POLL_MS = 10;

/** What a buffered line costs beyond its message bytes: its record and the buffer's slot. */
const BUFFERED_LINE_BYTES = 96;

/**
 * Grafana Loki sink: batches by size and age, gzip JSON to `POST /loki/api/v1/push`, retries 429, 5xx
 * and network errors with backoff keeping each line's original timestamp (so a retried batch is
 * de-duplicated by Loki), drops on other 4xx, and bounds its buffer; every drop is counted by reason.
 *
 * Written here rather than taken from pino-loki: pino-loki never retries and loses a whole batch on
 * any error, and it would tie the sink to the process logger's levels and transport thread.
 */
export class LokiLogSink implements LogSink {
  readonly name = 'loki';
  readonly stats: SinkStats = emptySinkStats();
  private buffer: Buffered[] = [];
  private bufferBytes = 0;
  private timer?: NodeJS.Timeout;
  private sending?: Promise<void>;
  private readonly stopping = new AbortController();
  private closing = false;
  /** `stopping` aborted, as a plain field: read per line (AbortSignal's getter checks its receiver). */
  private stopped = false;
  private readonly streams = new WeakMap<RunBinding, Map<LogEntry['level'], LokiStream>>();
  private lastStream?: { binding: RunBinding; level: LogEntry['level']; stream: LokiStream };

  constructor(
    private readonly config: LokiConfig,
    /** Lines buffered before new ones are dropped as `overflow`. */
    private readonly maxBuffered: number,
    /** Bytes buffered (this sink's, within the logger's) before new lines are dropped as `budget`. */
    private readonly budget: LogBudget,
    private readonly logger: LoggerService,
    /**
     * True while the Conveyor sink is busy storing lines: a push then waits, up to `deferMaxMs`
     * after its oldest line was logged. A run's result waits for its Conveyor lines only, and on
     * a small machine a push (JSON, gzip, and a Loki nearby) takes CPU from the NATS server
     * storing them; a few seconds later costs a Loki reader little. Lines that old, or a buffer
     * holding half its budget, are pushed at once: waiting must never make lines drop.
     */
    private readonly behind: () => boolean = () => false,
  ) {
    this.stopping.signal.addEventListener('abort', () => (this.stopped = true), { once: true });
  }

  write(entry: LogEntry): void {
    if (this.stopped) return void (this.stats.dropped.shutdown += 1);
    if (this.buffer.length >= this.maxBuffered) return void (this.stats.dropped.overflow += 1);
    const bytes = entry.bytes + BUFFERED_LINE_BYTES;
    if (!this.budget.tryReserve(bytes)) return void (this.stats.dropped.budget += 1);
    this.buffer.push({
      stream: this.streamOf(entry.binding, entry.level),
      message: entry.message,
      timeUs: entry.timeUs,
      timeSubNs: entry.timeSubNs,
      traceId: entry.traceId,
      spanId: entry.spanId,
      bytes,
    });
    this.bufferBytes += bytes;
    // A push in flight sends the next batch when it ends: no kick per line meanwhile (a flood
    // held behind the Conveyor sink buffers a hundred thousand lines past batchBytes).
    if (this.bufferBytes >= this.config.batchBytes) {
      if (!this.sending) this.kick();
    } else this.timer ??= setTimeout(() => this.kick(), this.config.batchIntervalMs);
  }

  /** A run's Loki stream (labels, their key, its metadata) per level, made once rather than per line. */
  private streamOf(binding: RunBinding, level: LogEntry['level']): LokiStream {
    // A run logs line after line at one level: the last stream is nearly always the one.
    const last = this.lastStream;
    if (last && last.binding === binding && last.level === level) return last.stream;
    const stream = this.makeStreamOf(binding, level);
    this.lastStream = { binding, level, stream };
    return stream;
  }

  private makeStreamOf(binding: RunBinding, level: LogEntry['level']): LokiStream {
    let byLevel = this.streams.get(binding);
    if (!byLevel) this.streams.set(binding, (byLevel = new Map()));
    let stream = byLevel.get(level);
    if (!stream) {
      const labels: Record<string, string> = this.config.legacyLabels
        ? { driver: binding.driver, event: binding.event, id: binding.messageId, run_id: binding.runId }
        : { driver: binding.driver, event: binding.event, level };
      // Per-run ids are structured metadata, not labels: each label set is a Loki stream (5,000 max).
      const metadata = { run_id: binding.runId, message_id: binding.messageId };
      stream = { key: JSON.stringify(labels), metadata, metadataJson: JSON.stringify(metadata) };
      byLevel.set(level, stream);
    }
    return stream;
  }

  /**
   * The push API's `[timestamp, line, metadata?]` of a buffered line, as JSON: written out rather
   * than made as arrays for JSON.stringify (a flooded run pushes a hundred thousand of them).
   */
  private valueOf(line: Buffered): string {
    const { stream } = line;
    const head = `["${formatUnixNanos(line.timeUs, line.timeSubNs)}",${JSON.stringify(line.message)}`;
    if (this.config.legacyLabels) return `${head}]`;
    if (!line.traceId) return `${head},${stream.metadataJson}]`;
    const traced = { ...stream.metadata, trace_id: line.traceId, span_id: line.spanId! };
    return `${head},${JSON.stringify(traced)}]`;
  }

  /** The push request's JSON body: a stream per label set, each line in the order it came. */
  private pushBody(batch: Buffered[]): string {
    const values = new Map<string, string[]>();
    for (const item of batch) {
      const list = values.get(item.stream.key);
      if (list) list.push(this.valueOf(item));
      else values.set(item.stream.key, [this.valueOf(item)]);
    }
    const streams = [...values].map(([key, list]) => `{"stream":${key},"values":[${list.join(',')}]}`);
    return `{"streams":[${streams.join(',')}]}`;
  }

  async close(timeoutMs: number): Promise<void> {
    // Shutting down, every line gets its push now: the flush timeout is for sending, not waiting.
    this.closing = true;
    const deadline = setTimeout(() => this.stopping.abort(), timeoutMs);
    while (!this.stopping.signal.aborted && (this.buffer.length > 0 || this.sending)) {
      this.kick();
      await this.sending;
    }
    clearTimeout(deadline);
    this.stopping.abort();
    clearTimeout(this.timer);
    this.stats.dropped.shutdown += this.buffer.length;
    for (const item of this.buffer) this.budget.release(item.bytes);
    this.buffer = [];
    this.bufferBytes = 0;
  }

  /** Sends the next batch unless one is in flight (one at a time keeps each stream in order). */
  private kick(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.sending || this.buffer.length === 0) return;
    let size = 0;
    let count = 0;
    while (
      count < this.buffer.length &&
      (count === 0 || size + this.buffer[count].bytes <= this.config.batchBytes)
    ) {
      size += this.buffer[count].bytes;
      count += 1;
    }
    const batch = this.buffer.splice(0, count);
    this.bufferBytes -= size;
    this.sending = this.send(batch).finally(() => {
      this.sending = undefined;
      if (this.stopping.signal.aborted || this.buffer.length === 0) return;
      if (this.bufferBytes >= this.config.batchBytes) this.kick();
      else this.timer ??= setTimeout(() => this.kick(), this.config.batchIntervalMs);
    });
  }

  private async send(batch: Buffered[]): Promise<void> {
    try {
      await this.deliver(batch);
    } finally {
      // Sent or dropped, the batch no longer occupies the budget.
      for (const item of batch) this.budget.release(item.bytes);
    }
  }

  private pushOnce(body: Buffer, headers: Record<string, string>): Promise<HttpAnswer> {
    return fetchWithin(
      `${this.config.url}/loki/api/v1/push`,
      { method: 'POST', headers, body },
      this.config.timeoutMs,
      this.stopping.signal,
    );
  }

  private async deliver(batch: Buffered[]): Promise<void> {
    // Encoded on a later turn: a handler logging in a tight loop fills a batch and must not pay
    // for its encoding inside a logger call.
    await setImmediate();
    const waitUntil = batch[0].timeUs / 1000 + this.config.deferMaxMs;
    while (
      this.behind() &&
      Date.now() < waitUntil &&
      this.budget.usedBytes * 2 < this.budget.limitBytes &&
      !this.closing
    ) {
      await sleep(BEHIND_POLL_MS, this.stopping.signal);
    }
    const body = await gzipAsync(this.pushBody(batch), GZIP_OPTIONS);
    const headers: Record<string, string> = {
      'Content-Type': 'application/json',
      'Content-Encoding': 'gzip',
    };
    Object.assign(headers, lokiAuthHeaders(this.config));
    for (let attempt = 1; ; attempt++) {
      let failure: string;
      try {
        const response = await this.pushOnce(body, headers);
        if (response.ok) {
          this.stats.sent += batch.length;
          return;
        }
        const text = response.text.slice(0, 300);
        if (response.status !== 429 && response.status < 500) {
          // Loki will refuse the same body again: retrying would only block the lines behind it.
          this.stats.dropped.rejected += batch.length;
          this.logger.warn(`Loki rejected ${batch.length} line(s) with ${response.status}: ${text}`);
          return;
        }
        failure = `${response.status} ${text}`;
      } catch (err) {
        failure = (err as Error).message;
      }
      if (this.stopping.signal.aborted) {
        this.stats.dropped.shutdown += batch.length;
        return;
      }
      if (attempt >= MAX_ATTEMPTS) {
        this.stats.dropped.retries_exhausted += batch.length;
        this.logger.warn(
          `Loki push of ${batch.length} line(s) failed ${attempt} times (${failure}): dropped`,
        );
        return;
      }
      if (attempt === 1) this.logger.warn(`Loki push failed (${failure}); retrying with backoff`);
      await sleep(backoffDelay(attempt, 500, 30_000), this.stopping.signal);
    }
  }
}
