import type { LoggerService } from '@nestjs/common';
import type { NatsConnection } from 'nats';
import type { LogConfig } from '../../module/log.options';
import { liveLogSubject, logLineJson, logLinePrefix, logSubject } from '../../protocol';
import { backoffDelay, sleep } from '../../transport/backoff';
import { JetStreamPublisher, type StoredLine } from '../../transport/jetstream.publisher';
import { LINE_OVERHEAD_BYTES, LogBudget } from '../log-budget';
import { DropReason, LogEntry, LogSink, SinkStats, emptySinkStats } from '../log-entry';
import { RunBinding, formatRfc3339Nano, formatUnixSeconds, nextTimestampNs } from '../run-scope';

/**
 * Lines per stored batch: one socket write and two PubAcks for this many lines (see
 * JetStreamPublisher), instead of a round trip and a PubAck each.
 */
const BATCH_LINES = 128;
/** …or fewer, when their payloads reach this many bytes. */
const BATCH_BYTES = 64 * 1024;
/**
 * Batches in flight at once (about 32,000 lines): enough that a handler logging in a tight
 * synchronous loop keeps the socket busy (PubAcks are only read once it yields), bounded so a
 * stream that stops answering holds a known amount.
 */
const WINDOW = 256;
/** A batch whose publish keeps failing this long (while connected) is dropped (counted). */
const RETRY_BUDGET_MS = 60_000;
const PUBLISH_TIMEOUT_MS = 5000;
/**
 * An unanswered batch is sent again this often within its timeout: a `logs-engine` without a
 * leader (an election on a cluster) drops it silently, and the run's result waits for its lines.
 */
const RESEND_AFTER_MS = 1000;
/** The Log JSON around a message: keys, run id, driver, pipeline, a 30-byte timestamp. */
const ENVELOPE_BYTES = 192;

/** What every line of one delivery shares: made once, not per line (a backlog holds many lines). */
interface RunSubjects {
  runId: string;
  stored: string;
  live: string;
  /**
   * `Nats-Msg-Id` prefix: stored once even when a publish is retried after a lost PubAck, yet unique
   * per delivery. A retried run, a shutdown rerun or a driver used twice in one pipeline (each its
   * own message) restarts `seq`, and a bare `{run}:{driver}:{seq}` would make JetStream drop its lines.
   */
  msgIdPrefix: string;
  /** The Log JSON up to the timestamp: the run's fields, encoded once. */
  logPrefix: string;
}

/** A line waiting to be stored; `liveSubject` is set while its live copy is still to go. */
interface QueuedLine extends StoredLine {
  payload: string;
  runId: string;
  cost: number;
}

/** Lines stored together (one write, one PubAck pair); retried together. */
interface Batch {
  lines: QueuedLine[];
  payloadBytes: number;
  cost: number;
  firstTry: number;
  attempt: number;
}

/** Lines of one run that did not make it into the queue, until a marker line says so. */
interface RunDrops {
  binding: RunBinding;
  lines: number;
  bytes: number;
  reason: DropReason;
  /** Every drop of the run, marker or not, for its own accounting. */
  total: number;
}

/** Where the marker line tells the reader to look. */
const RAISE_HINT: Partial<Record<DropReason, string>> = {
  budget: 'raise logs.maxBufferBytes / logs.maxTotalBytes (CONVEYOR_LOG_MAX_BYTES)',
  overflow: 'raise logs.maxBufferLines',
};

/**
 * The Conveyor sink (contract §9.1): the Log JSON to JetStream `logs.{runId}` (stored by the server)
 * and the same bytes to core `live.logs.{runId}.{driver}` (its SSE forwards them verbatim). Unlike
 * Go, the live publish does not depend on the stored one, and stored publishes are pipelined on one
 * PubAck inbox. Bounded in bytes: what does not fit is dropped, counted, and announced by a marker
 * line in the run's stored log as soon as there is room again. While NATS is disconnected nothing
 * is handed to nats.js (its reconnect buffer has no bound): live lines are skipped and counted, and
 * stored lines wait in the queue, in order, for the reconnect.
 */
export class ConveyorLogSink implements LogSink {
  readonly name = 'conveyor';
  readonly stats: SinkStats = emptySinkStats();
  /** The live subject's own accounting (`conveyor-live` in metrics). */
  readonly liveStats: SinkStats = emptySinkStats();
  /** Sealed batches waiting for a window slot, oldest first. */
  private readonly ready: Batch[] = [];
  /** The batch lines are added to; sealed when full or once the current task yields. */
  private open?: Batch;
  /**
   * Lines of ready batches, waiting for a window slot, against `maxBufferLines` (the open batch
   * holds at most BATCH_LINES more, and is sent as soon as the window allows).
   */
  private waitingLines = 0;
  private inFlight = 0;
  /** Lines of each run not yet stored (queued, in flight or waiting to retry). */
  private readonly unsettled = new Map<string, number>();
  private readonly drops = new Map<string, RunDrops>();
  private readonly waiters = new Set<() => void>();
  private readonly stopped = new AbortController();
  private readonly publisher: JetStreamPublisher;
  private readonly budget: LogBudget;
  private connected = true;
  private readonly sealOpen = () => this.seal();

  constructor(
    private readonly nc: NatsConnection,
    private readonly config: LogConfig,
    total: LogBudget,
    private readonly logger: LoggerService,
  ) {
    this.publisher = new JetStreamPublisher(nc, { resendAfterMs: RESEND_AFTER_MS });
    this.budget = new LogBudget(config.maxBufferBytes, total);
    void this.watch();
  }

  write(entry: LogEntry): void {
    const { binding } = entry;
    if (this.stopped.signal.aborted) {
      this.liveStats.dropped.shutdown += 1;
      return void (this.stats.dropped.shutdown += 1);
    }
    // Decided before encoding: under a flood most lines are dropped, and that must cost little.
    const cost = Buffer.byteLength(entry.message) + ENVELOPE_BYTES + LINE_OVERHEAD_BYTES;
    const refused: DropReason | undefined =
      this.waitingLines >= this.config.maxBufferLines
        ? 'overflow'
        : !this.budget.tryReserve(cost)
          ? 'budget'
          : undefined;
    if (refused) {
      // The live copy goes only with a stored one: live publishes are then paced by JetStream's
      // acks, and nats.js's unbounded outbound buffer never holds more than the budget does.
      this.liveStats.dropped[refused] += 1;
      return this.drop(binding, cost, refused);
    }
    this.announceDrops(binding.runId);
    this.enqueue(binding, entry.message, entry.tsNs, entry.seq, cost);
  }

  /** True while some of the run's lines are not stored yet (or a drop is not announced yet). */
  hasUnsettled(runId: string): boolean {
    return this.unsettled.has(runId) || this.drops.has(runId);
  }

  droppedOf(runId: string): number {
    return this.drops.get(runId)?.total ?? 0;
  }

  async flushRun(runId: string, timeoutMs: number): Promise<void> {
    // The run ends: its stored log must say what it lost before the result is published.
    this.announceDrops(runId, true);
    this.seal();
    await this.until(() => !this.unsettled.has(runId), timeoutMs);
    const drops = this.drops.get(runId);
    if (drops && drops.lines === 0) this.drops.delete(runId);
  }

  async close(timeoutMs: number): Promise<void> {
    for (const runId of [...this.drops.keys()]) this.announceDrops(runId, true);
    this.seal();
    await this.until(() => this.unsettled.size === 0, timeoutMs);
    this.stopped.abort();
    // Only what never left is dropped here; a batch in flight is counted once, when it ends.
    for (const batch of this.ready.splice(0)) {
      this.settleLive(batch, 'shutdown');
      this.waitingLines -= batch.lines.length;
      this.settle(batch, 'shutdown');
    }
    this.publisher.close();
  }

  private enqueue(binding: RunBinding, message: string, tsNs: bigint, seq: number | string, cost: number): void {
    const run = subjectsOf(binding);
    const timestamp =
      this.config.timestampFormat === 'unix' ? formatUnixSeconds(tsNs) : formatRfc3339Nano(tsNs);
    const payload = logLineJson(run.logPrefix, timestamp, message);
    // Live viewers get what happens now: a line logged while NATS is away is skipped, not replayed.
    if (!this.connected) this.liveStats.dropped.disconnected += 1;
    const line: QueuedLine = {
      subject: run.stored,
      msgId: run.msgIdPrefix + seq,
      payload,
      payloadBytes: Buffer.byteLength(payload),
      liveSubject: this.connected ? run.live : undefined,
      runId: run.runId,
      cost,
    };
    this.track(run.runId, 1);
    let batch = this.open;
    if (!batch) {
      batch = this.open = { lines: [], payloadBytes: 0, cost: 0, firstTry: 0, attempt: 0 };
      // A handler that logs a few lines and awaits gets them sent as soon as it yields.
      queueMicrotask(this.sealOpen);
    }
    batch.lines.push(line);
    batch.payloadBytes += line.payloadBytes;
    batch.cost += cost;
    if (batch.lines.length >= BATCH_LINES || batch.payloadBytes >= BATCH_BYTES) this.seal();
  }

  private seal(): void {
    if (!this.open) return;
    this.waitingLines += this.open.lines.length;
    this.ready.push(this.open);
    this.open = undefined;
    this.pump();
  }

  private drop(binding: RunBinding, cost: number, reason: DropReason): void {
    this.stats.dropped[reason] += 1;
    const drops = this.drops.get(binding.runId) ?? { binding, lines: 0, bytes: 0, reason, total: 0 };
    drops.lines += 1;
    drops.total += 1;
    drops.bytes += cost - LINE_OVERHEAD_BYTES - ENVELOPE_BYTES;
    drops.reason = reason;
    this.drops.set(binding.runId, drops);
  }

  /** Queues the marker line of a run's unannounced drops, when there is room (or `force`d at its end). */
  private announceDrops(runId: string, force = false): void {
    const drops = this.drops.get(runId);
    if (!drops || drops.lines === 0 || this.stopped.signal.aborted) return;
    const hint = RAISE_HINT[drops.reason];
    const text =
      `[conveyor] ${drops.lines} log line(s) (${drops.bytes} bytes) of this run were not shipped: ` +
      `${drops.reason === 'budget' ? 'the log buffer was full' : 'too many lines buffered'}` +
      (hint ? ` (${hint})` : '');
    const cost = Buffer.byteLength(text) + ENVELOPE_BYTES + LINE_OVERHEAD_BYTES;
    if (!force && !this.budget.tryReserve(cost)) return;
    if (force) this.budget.force(cost);
    drops.binding.seq += 1;
    drops.lines = 0;
    drops.bytes = 0;
    this.enqueue(drops.binding, text, nextTimestampNs(drops.binding), `drops-${drops.binding.seq}`, cost);
  }

  private pump(): void {
    while (this.connected && this.inFlight < WINDOW && this.ready.length > 0) {
      const batch = this.ready.shift()!;
      this.waitingLines -= batch.lines.length;
      this.inFlight += 1;
      batch.firstTry = Date.now();
      this.publish(batch);
    }
  }

  /** One stored batch, with callbacks rather than promises: this runs per hundred lines. */
  private publish(batch: Batch): void {
    const first = batch.attempt === 0;
    let sending = true;
    let refusedAtOnce = false;
    this.publisher.sendBatch(batch.lines, PUBLISH_TIMEOUT_MS, (err) => {
      if (sending && err) refusedAtOnce = true;
      if (!err) return this.finished(batch);
      if (this.stopped.signal.aborted) return this.finished(batch, 'shutdown');
      batch.attempt += 1;
      // A disconnect pauses the clock: the batch is retried after the reconnect.
      if (this.connected && Date.now() - batch.firstTry > RETRY_BUDGET_MS) {
        this.logger.warn(`${batch.lines.length} log line(s) dropped after ${batch.attempt} attempts: ${err.message}`);
        return this.finished(batch, 'retries_exhausted');
      }
      void this.retryLater(batch);
    });
    sending = false;
    // The live copies go with the first send only (a resend must not show a line twice).
    if (first) this.settleLive(batch, refusedAtOnce ? 'disconnected' : undefined);
  }

  private settleLive(batch: Batch, reason?: DropReason): void {
    for (const line of batch.lines) {
      if (!line.liveSubject) continue;
      line.liveSubject = undefined;
      if (reason) this.liveStats.dropped[reason] += 1;
      else this.liveStats.sent += 1;
    }
  }

  private async retryLater(batch: Batch): Promise<void> {
    await sleep(backoffDelay(batch.attempt, 100, 5000), this.stopped.signal);
    if (!this.connected) {
      while (!this.connected && !this.stopped.signal.aborted) await this.until(() => this.connected, 60_000);
      batch.firstTry = Date.now();
    }
    if (this.stopped.signal.aborted) return this.finished(batch, 'shutdown');
    this.publish(batch);
  }

  private finished(batch: Batch, reason?: DropReason): void {
    this.inFlight -= 1;
    this.settle(batch, reason);
    this.pump();
  }

  /** A batch's life ends: stored, or dropped for `reason`. Exactly once per line. */
  private settle(batch: Batch, reason?: DropReason): void {
    const n = batch.lines.length;
    if (reason) this.stats.dropped[reason] += n;
    else this.stats.sent += n;
    this.budget.release(batch.cost);
    let runId = '';
    let count = 0;
    // Lines of one run sit together: one map update per run, not per line.
    for (const line of batch.lines) {
      if (line.runId !== runId) {
        if (count) this.track(runId, -count);
        runId = line.runId;
        count = 0;
      }
      count += 1;
    }
    if (count) this.track(runId, -count);
  }

  private track(runId: string, delta: number): void {
    const n = (this.unsettled.get(runId) ?? 0) + delta;
    if (n > 0) this.unsettled.set(runId, n);
    else this.unsettled.delete(runId);
    if (delta < 0) this.wake();
  }

  private wake(): void {
    this.waiters.forEach((check) => check());
  }

  private async watch(): Promise<void> {
    for await (const status of this.nc.status()) {
      if (status.type === 'disconnect') this.connected = false;
      else if (status.type === 'reconnect') {
        this.connected = true;
        this.wake();
        this.pump();
      }
    }
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

const subjectsByRun = new WeakMap<RunBinding, RunSubjects>();

function subjectsOf(binding: RunBinding): RunSubjects {
  let subjects = subjectsByRun.get(binding);
  if (!subjects) {
    subjects = {
      runId: binding.runId,
      stored: logSubject(binding.runId),
      live: liveLogSubject(binding.runId, binding.driver),
      msgIdPrefix: `${binding.runId}:${binding.driver}:${binding.messageId}:${binding.delivery}:`,
      logPrefix: logLinePrefix({ runid: binding.runId, driver: binding.driver, pipeline: binding.pipeline }),
    };
    subjectsByRun.set(binding, subjects);
  }
  return subjects;
}
