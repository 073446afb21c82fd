import type { LoggerService } from '@nestjs/common';
import type { NatsConnection } from 'nats';
import type { LogConfig } from '../../module/log.options';
import { backoffDelay, sleep } from '../../util/backoff';
import { JetStreamPublisher } from '../../transport/jetstream.publisher';
import { LogBudget } from '../log-budget';
import { DropReason, LogEntry, LogSink, SinkStats, emptySinkStats } from '../log-entry';
import { RunBinding, advanceClock } from '../run-scope';
import { ConveyorLogBatch, QUEUED_LINE_BYTES, QueuedLine, subjectsOf } from './conveyor-log.batch';

/**
 * Bytes handed to the connection and not yet stored, at most. PubAcks are only read once a
 * handler logging in a tight synchronous loop yields, so this is what the server has to work on
 * meanwhile: with 16 MiB it ran out a third of the way through a 100,000-line loop and idled until
 * the handler returned (the bench's (b) stored 15 % more lines/s with 48 MiB). Frames the socket
 * took are in the kernel's buffers, not this process's: the budget counts them only while nats.js
 * or the socket still hold them (see `publish`).
 */
const WINDOW_BYTES = 64 * 1024 * 1024;
/** Stored batches kept for reuse. */
const SPARE_BATCHES = 32;
/** A batch whose publish keeps failing this long (while connected) is dropped (counted). */
const RETRY_BUDGET_MS = 60_000;
const PUBLISH_TIMEOUT_MS = 5000;
/**
 * An unanswered batch is sent again this often within its timeout: a `logs-engine` without a
 * leader (an election on a cluster) drops it silently, and the run's result waits for its lines.
 */
const RESEND_AFTER_MS = 1000;

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
 * Go, the live publish does not depend on the stored one, and stored lines go in batches, written
 * as one and answered by two PubAcks (see ConveyorLogBatch, JetStreamPublisher). Bounded in bytes: what does not fit is dropped, counted, and announced by a marker
 * line in the run's stored log as soon as there is room again. While NATS is disconnected nothing
 * is handed to nats.js (its reconnect buffer has no bound): live lines are skipped and counted, and
 * stored lines wait in the queue, in order, for the reconnect.
 */
export class ConveyorLogSink implements LogSink {
  readonly name = 'conveyor';
  readonly stats: SinkStats = emptySinkStats();
  /** The live subject's own accounting (`conveyor-live` in metrics). */
  readonly liveStats: SinkStats = emptySinkStats();
  /** Stored batches, emptied for the next lines. */
  private readonly spare: ConveyorLogBatch[] = [];
  /** Sealed batches waiting for room in the send window, oldest first. */
  private readonly ready: ConveyorLogBatch[] = [];
  /** The batch lines are added to; sealed when full or once the current task yields. */
  private open?: ConveyorLogBatch;
  /**
   * Lines of ready batches, against `maxBufferLines` (the open batch holds at most BATCH_LINES
   * more, and is sent as soon as the window allows).
   */
  private waitingLines = 0;
  private inFlight = 0;
  private inFlightBytes = 0;
  /** Of `inFlightBytes`, the frames this process may still hold (the budget counts them). */
  private heldInFlight = 0;
  /** What frames held in this process may take of the budget: a quarter, the rest is for lines. */
  private readonly heldCap: number;
  /** Lines of each run not yet stored (queued, in flight or waiting to retry). */
  private readonly unsettled = new Map<string, number>();
  private readonly drops = new Map<string, RunDrops>();
  private readonly waiters = new Set<() => void>();
  private readonly stopped = new AbortController();
  /** Set with `stopped`; read per line (AbortSignal's getter checks its receiver each time). */
  private closed = false;
  private readonly publisher: JetStreamPublisher;
  private readonly budget: LogBudget;
  private connected = true;
  /** Message text of the last sealed batch. */
  private lastTextBytes = 0;
  /**
   * One microtask seals the open batch when the current task yields: queued once per task, not
   * per batch (a flood opens hundreds of batches in one synchronous loop, and with
   * AsyncLocalStorage in use each queueMicrotask makes an async resource).
   */
  private sealQueued = false;
  private readonly sealOpen = () => {
    this.sealQueued = false;
    this.seal();
  };

  constructor(
    private readonly nc: NatsConnection,
    private readonly config: LogConfig,
    total: LogBudget,
    private readonly logger: LoggerService,
  ) {
    this.publisher = new JetStreamPublisher(nc, { resendAfterMs: RESEND_AFTER_MS });
    this.budget = new LogBudget(config.maxBufferBytes, total);
    this.heldCap = Math.floor(Math.min(config.maxBufferBytes, total.limitBytes) / 4);
    void this.watch();
  }

  write(entry: LogEntry): void {
    const { binding } = entry;
    if (this.closed) {
      this.liveStats.dropped.shutdown += 1;
      return void (this.stats.dropped.shutdown += 1);
    }
    // Decided before anything else: under a flood most lines are dropped, and that must cost little.
    const { bytes } = entry;
    const cost = bytes + QUEUED_LINE_BYTES;
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
      return this.drop(binding, bytes, refused);
    }
    if (this.drops.size > 0) this.announceDrops(binding.runId);
    this.enqueue(binding, entry, false, cost);
  }

  /** True while some of the run's lines are not stored yet (or a drop is not announced yet). */
  hasUnsettled(runId: string): boolean {
    return this.unsettled.has(runId) || this.drops.has(runId) || (this.open?.hasRun(runId) ?? false);
  }

  /** True while lines are queued or in flight and NATS is there to take them. */
  get busy(): boolean {
    return this.connected && (this.inFlight > 0 || this.ready.length > 0 || this.open !== undefined);
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
    this.closed = true;
    this.stopped.abort();
    // Only what never left is dropped here; a batch in flight is counted once, when it ends.
    for (const batch of this.ready.splice(0)) {
      this.liveStats.dropped.shutdown += batch.takeLive();
      this.waitingLines -= batch.count;
      this.settle(batch, 'shutdown');
    }
    this.publisher.close();
  }

  private enqueue(binding: RunBinding, line: QueuedLine, marker: boolean, reserved: number): void {
    const run = subjectsOf(binding);
    // Live viewers get what happens now: a line logged while NATS is away is skipped, not replayed.
    if (!this.connected) this.liveStats.dropped.disconnected += 1;
    let batch = this.open;
    if (!batch) {
      batch = this.open =
        this.spare.pop() ?? new ConveyorLogBatch(this.config.timestampFormat, this.lastTextBytes * 1.125);
      // A handler that logs a few lines and awaits gets them sent as soon as it yields.
      if (!this.sealQueued) {
        this.sealQueued = true;
        queueMicrotask(this.sealOpen);
      }
    }
    // What was reserved was the message and its columns; the batch says what it really holds.
    const held = batch.add(run, line, this.connected, marker);
    if (held > reserved) this.budget.force(held - reserved);
    else this.budget.release(reserved - held);
    if (batch.full) this.seal();
  }

  private seal(): void {
    if (!this.open) return;
    // The next batch is likely alike: sized for it, it needs no growing (copies) as lines come.
    this.lastTextBytes = this.open.messageBytes;
    this.waitingLines += this.open.count;
    // Counted per batch, not per line: until it is sealed, hasUnsettled looks into the open batch.
    this.open.forEachRun(this.trackLines);
    this.ready.push(this.open);
    this.open = undefined;
    this.pump();
  }

  private drop(binding: RunBinding, bytes: number, reason: DropReason): void {
    this.stats.dropped[reason] += 1;
    const drops = this.drops.get(binding.runId) ?? { binding, lines: 0, bytes: 0, reason, total: 0 };
    drops.lines += 1;
    drops.total += 1;
    drops.bytes += bytes;
    drops.reason = reason;
    this.drops.set(binding.runId, drops);
  }

  /** Queues the marker line of a run's unannounced drops, when there is room (or `force`d at its end). */
  private announceDrops(runId: string, force = false): void {
    const drops = this.drops.get(runId);
    if (!drops || drops.lines === 0 || this.closed) return;
    const hint = RAISE_HINT[drops.reason];
    const message =
      `[conveyor] ${drops.lines} log line(s) (${drops.bytes} bytes) of this run were not shipped: ` +
      `${drops.reason === 'budget' ? 'the log buffer was full' : 'too many lines buffered'}` +
      (hint ? ` (${hint})` : '');
    const bytes = Buffer.byteLength(message);
    const cost = bytes + QUEUED_LINE_BYTES;
    if (!force && !this.budget.tryReserve(cost)) return;
    if (force) this.budget.force(cost);
    const { binding } = drops;
    binding.seq += 1;
    advanceClock(binding);
    drops.lines = 0;
    drops.bytes = 0;
    const line = { message, bytes, timeUs: binding.clockUs, timeSubNs: binding.clockSubNs, seq: binding.seq };
    this.enqueue(binding, line, true, cost);
  }

  private pump(): void {
    while (this.connected && this.ready.length > 0) {
      const batch = this.ready[0];
      const wire = batch.wireEstimate;
      const full = this.inFlightBytes + wire > WINDOW_BYTES || this.heldInFlight + wire > this.heldCap;
      if (this.inFlight > 0 && full) return;
      if (!this.budget.tryReserve(wire)) {
        // One batch may always go: a budget full of queued lines would otherwise wait for itself.
        if (this.inFlight > 0) return;
        this.budget.force(wire);
      }
      this.ready.shift();
      this.waitingLines -= batch.count;
      this.inFlight += 1;
      this.inFlightBytes += wire;
      batch.wireBytes = wire;
      batch.firstTry = Date.now();
      this.publish(batch);
    }
  }

  /** One stored batch, with callbacks rather than promises: this runs per batch of lines. */
  private publish(batch: ConveyorLogBatch): void {
    const first = batch.attempt === 0;
    const wireBytes = this.publisher.sendBatch(batch, PUBLISH_TIMEOUT_MS, (err) => {
      if (!err) return this.finished(batch);
      if (this.closed) return this.finished(batch, 'shutdown');
      batch.attempt += 1;
      // A disconnect pauses the clock: the batch is retried after the reconnect.
      if (this.connected && Date.now() - batch.firstTry > RETRY_BUDGET_MS) {
        this.logger.warn(
          `${batch.count} log line(s) dropped after ${batch.attempt} attempts: ${err.message}`,
        );
        return this.finished(batch, 'retries_exhausted');
      }
      void this.retryLater(batch);
    });
    if (!first) return;
    // The live copies go with the first send only (a resend must not show a line twice); none
    // went when it failed at once.
    const live = batch.takeLive();
    if (wireBytes > 0) this.liveStats.sent += live;
    else this.liveStats.dropped.disconnected += live;
    // The window and the budget hold what was really written from now on, not the estimate.
    if (wireBytes > batch.wireBytes) this.budget.force(wireBytes - batch.wireBytes);
    else this.budget.release(batch.wireBytes - wireBytes);
    this.inFlightBytes += wireBytes - batch.wireBytes;
    batch.wireBytes = wireBytes;
    batch.wireHeld = wireBytes;
    // Taken by the socket at once: the frames are in the kernel's buffers, and the window alone
    // counts them until the PubAck. Frames still queued in this process stay in the budget.
    if (wireBytes > 0 && this.publisher.heldBytes() === 0) {
      this.budget.release(wireBytes);
      batch.wireHeld = 0;
    }
    this.heldInFlight += batch.wireHeld;
  }

  private async retryLater(batch: ConveyorLogBatch): Promise<void> {
    await sleep(backoffDelay(batch.attempt, 100, 5000), this.stopped.signal);
    if (!this.connected) {
      while (!this.connected && !this.closed) await this.until(() => this.connected, 60_000);
      batch.firstTry = Date.now();
    }
    if (this.closed) return this.finished(batch, 'shutdown');
    this.publish(batch);
  }

  private finished(batch: ConveyorLogBatch, reason?: DropReason): void {
    this.inFlight -= 1;
    this.inFlightBytes -= batch.wireBytes;
    this.heldInFlight -= batch.wireHeld;
    this.budget.release(batch.wireHeld);
    this.settle(batch, reason);
    this.pump();
  }

  /** A batch's life ends: stored, or dropped for `reason`. Exactly once per line. */
  private settle(batch: ConveyorLogBatch, reason?: DropReason): void {
    if (reason) this.stats.dropped[reason] += batch.count;
    else this.stats.sent += batch.count;
    this.budget.release(batch.cost);
    batch.forEachRun(this.untrackLines);
    batch.reset();
    if (this.spare.length < SPARE_BATCHES) this.spare.push(batch);
  }

  private readonly trackLines = (runId: string, lines: number) => this.track(runId, lines);
  private readonly untrackLines = (runId: string, lines: number) => this.track(runId, -lines);

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
