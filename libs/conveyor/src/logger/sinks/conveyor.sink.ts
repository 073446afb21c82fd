import type { LoggerService } from '@nestjs/common';
import type { NatsConnection } from 'nats';
import type { LogConfig } from '../../module/log.options';
import { encodeLogLine, liveLogSubject, logLinePrefix, logSubject } from '../../protocol';
import { backoffDelay, sleep } from '../../transport/backoff';
import { JetStreamPublisher } from '../../transport/jetstream.publisher';
import { LINE_OVERHEAD_BYTES, LogBudget } from '../log-budget';
import { DropReason, LogEntry, LogSink, SinkStats, emptySinkStats } from '../log-entry';
import { RunBinding, formatRfc3339Nano, formatUnixSeconds, nextTimestampNs } from '../run-scope';

/** JetStream publishes in flight at once: pipelined, never one awaited round trip per line. */
const WINDOW = 512;
/** A line whose publish keeps failing this long (while connected) is dropped (counted). */
const RETRY_BUDGET_MS = 60_000;
const PUBLISH_TIMEOUT_MS = 5000;
/**
 * An unanswered line is sent again this often within its timeout: a `logs-engine` without a leader
 * (an election on a cluster) drops it silently, and the run's result waits for its lines.
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

interface Pending {
  run: RunSubjects;
  seq: number | string;
  bytes: Uint8Array;
  /** Published live as it goes out (not when it was logged while NATS was away). */
  live: boolean;
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
  private readonly queue: Pending[] = [];
  private head = 0;
  private inFlight = 0;
  /** Lines of each run not yet stored (queued, in flight or waiting to retry). */
  private readonly unsettled = new Map<string, number>();
  private readonly drops = new Map<string, RunDrops>();
  private readonly waiters = new Set<() => void>();
  private readonly stopped = new AbortController();
  private readonly publisher: JetStreamPublisher;
  private readonly budget: LogBudget;
  private connected = true;

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
      this.queued() >= this.config.maxBufferLines
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
    const bytes = this.encode(binding, entry.message, entry.tsNs);
    this.announceDrops(binding.runId);
    this.enqueue(binding, bytes, entry.seq, cost);
  }

  /**
   * The live copy goes out with the stored one, not at `write()`: handed to nats.js early, a
   * backlog's live copies would sit in its unbounded outbound buffer next to our own queue.
   */
  private publishLive(item: Pending): void {
    if (!item.live) return;
    item.live = false;
    try {
      this.nc.publish(item.run.live, item.bytes);
      this.liveStats.sent += 1;
    } catch {
      this.liveStats.dropped.disconnected += 1;
    }
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
    await this.until(() => !this.unsettled.has(runId), timeoutMs);
    const drops = this.drops.get(runId);
    if (drops && drops.lines === 0) this.drops.delete(runId);
  }

  async close(timeoutMs: number): Promise<void> {
    for (const runId of [...this.drops.keys()]) this.announceDrops(runId, true);
    await this.until(() => this.unsettled.size === 0, timeoutMs);
    this.stopped.abort();
    // Only what never left is dropped here; a publish in flight is counted once, when it ends.
    for (let i = this.head; i < this.queue.length; i++) {
      if (this.queue[i].live) this.liveStats.dropped.shutdown += 1;
      this.settle(this.queue[i], 'shutdown');
    }
    this.queue.length = 0;
    this.head = 0;
    this.publisher.close();
  }

  private encode(binding: RunBinding, message: string, tsNs: bigint): Uint8Array {
    const timestamp =
      this.config.timestampFormat === 'unix' ? formatUnixSeconds(tsNs) : formatRfc3339Nano(tsNs);
    return encodeLogLine(subjectsOf(binding).logPrefix, timestamp, message);
  }

  private enqueue(binding: RunBinding, bytes: Uint8Array, seq: number | string, cost: number): void {
    this.track(binding.runId, 1);
    // Live viewers get what happens now: a line logged while NATS is away is skipped, not replayed.
    if (!this.connected) this.liveStats.dropped.disconnected += 1;
    this.queue.push({
      run: subjectsOf(binding),
      seq,
      live: this.connected,
      bytes,
      cost,
      firstTry: Date.now(),
      attempt: 0,
    });
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
    const bytes = this.encode(drops.binding, text, nextTimestampNs(drops.binding));
    const cost = Buffer.byteLength(text) + ENVELOPE_BYTES + LINE_OVERHEAD_BYTES;
    if (!force && !this.budget.tryReserve(cost)) return;
    if (force) this.budget.force(cost);
    drops.binding.seq += 1;
    drops.lines = 0;
    drops.bytes = 0;
    this.enqueue(drops.binding, bytes, `drops-${drops.binding.seq}`, cost);
  }

  private queued(): number {
    return this.queue.length - this.head;
  }

  private pump(): void {
    while (this.connected && this.inFlight < WINDOW && this.head < this.queue.length) {
      this.inFlight += 1;
      this.publish(this.queue[this.head++]);
    }
    // Compact now and then instead of shift() per line (O(n) each on a large queue).
    if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }

  /** One stored publish, with callbacks rather than promises: this runs once per log line. */
  private publish(item: Pending): void {
    this.publishLive(item);
    const msgId = item.run.msgIdPrefix + item.seq;
    this.publisher.send(item.run.stored, item.bytes, msgId, PUBLISH_TIMEOUT_MS, (err) => {
      if (!err) return this.finished(item);
      if (this.stopped.signal.aborted) return this.finished(item, 'shutdown');
      item.attempt += 1;
      // A disconnect pauses the clock: the line is retried after the reconnect.
      if (this.connected && Date.now() - item.firstTry > RETRY_BUDGET_MS) {
        this.logger.warn(`log line ${msgId} dropped after ${item.attempt} attempts: ${err.message}`);
        return this.finished(item, 'retries_exhausted');
      }
      void this.retryLater(item);
    });
  }

  private async retryLater(item: Pending): Promise<void> {
    await sleep(backoffDelay(item.attempt, 100, 5000), this.stopped.signal);
    if (!this.connected) {
      while (!this.connected && !this.stopped.signal.aborted) await this.until(() => this.connected, 60_000);
      item.firstTry = Date.now();
    }
    if (this.stopped.signal.aborted) return this.finished(item, 'shutdown');
    this.publish(item);
  }

  private finished(item: Pending, reason?: DropReason): void {
    this.inFlight -= 1;
    this.settle(item, reason);
    this.pump();
  }

  /** A line's life ends: sent, or dropped for `reason`. Exactly once per line. */
  private settle(item: Pending, reason?: DropReason): void {
    if (reason) this.stats.dropped[reason] += 1;
    else this.stats.sent += 1;
    this.budget.release(item.cost);
    this.track(item.run.runId, -1);
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
