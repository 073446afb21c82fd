import type { LoggerService } from '@nestjs/common';
import { ErrorCode, NatsConnection, NatsError } from 'nats';
import type { LogConfig } from '../../module/log.options';
import { backoffDelay, sleep } from '../../util/backoff';
import { JetStreamPublisher } from '../../transport/jetstream.publisher';
import { LogBudget } from '../log-budget';
import { DropReason, LogEntry, LogSink, SinkStats, emptySinkStats } from '../log-entry';
import { RunBinding, advanceClock } from '../run-scope';
import {
  ConveyorLogBatch,
  QUEUED_LINE_BYTES,
  QueuedLine,
  RunSubjects,
  TOO_BIG,
  subjectsOf,
} from './conveyor-log.batch';

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
  /** What the server said, when it refused them. */
  refusal?: string;
  /** Every drop of the run, marker or not, for its own accounting. */
  total: number;
}

/** Where the marker line tells the reader to look. */
const RAISE_HINT: Partial<Record<DropReason, string>> = {
  budget: 'raise logs.maxBufferBytes / logs.maxTotalBytes (CONVEYOR_LOG_MAX_BYTES)',
  overflow: 'raise logs.maxBufferLines',
};

/** nats-server's default `max_payload`, until the server's INFO says otherwise. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

/**
 * A publish error no resend can cure: the same bytes would be refused again (a payload over
 * `max_payload`, a request the stream answers with a 4xx other than a timeout or a rate limit).
 * Retrying it for the whole retry budget only held back the results of every run in its batch.
 */
function isPermanent(err: Error): boolean {
  if ((err as NatsError).code === ErrorCode.MaxPayloadExceeded) return true;
  const status = (err as NatsError).api_error?.code;
  return status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429;
}

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
  private publisher: JetStreamPublisher;
  private readonly budget: LogBudget;
  private connected = true;
  /** The server's `max_payload`: a line whose frame is larger is dropped alone (see ConveyorLogBatch.add). */
  private maxPayload: number;
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
    private nc: NatsConnection,
    private readonly config: LogConfig,
    total: LogBudget,
    private readonly logger: LoggerService,
  ) {
    this.publisher = new JetStreamPublisher(nc, { resendAfterMs: RESEND_AFTER_MS });
    this.maxPayload = nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
    this.budget = new LogBudget(config.maxBufferBytes, total);
    this.heldCap = Math.floor(Math.min(config.maxBufferBytes, total.limitBytes) / 4);
    void this.watch(nc);
  }

  /**
   * Moves to a new connection (the transport dialled anew after nats.js closed the old one for
   * good). Lines are not the connection's but the runs': batches unanswered on the old one are
   * sent again over the new one (their `Nats-Msg-Id`s make what the old one did store a
   * duplicate the stream drops), queued ones follow, and a run's flush still waits for all of them.
   */
  use(nc: NatsConnection): void {
    if (nc === this.nc || this.closed) return;
    const old = this.publisher;
    this.nc = nc;
    this.publisher = new JetStreamPublisher(nc, { resendAfterMs: RESEND_AFTER_MS });
    this.maxPayload = nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
    this.connected = !nc.isClosed();
    void this.watch(nc);
    // Fails what still waits on the old connection: each batch is retried over `this.publisher`.
    old.close();
    this.wake();
    this.pump();
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
    if (this.enqueue(binding, entry, false, cost)) return;
    // Too big for one message on this server even after `logs.maxLineBytes` (escapes lengthen a
    // line): this line alone is dropped, never the batch it would have joined.
    this.liveStats.dropped.rejected += 1;
    this.drop(binding, bytes, 'rejected', `larger than the server's max_payload (${this.maxPayload} bytes)`);
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
    const deadline = Date.now() + timeoutMs;
    // The run ends: its stored log must say what it lost before the result is published. A batch
    // the server refuses while we wait adds drops of its own, to be said as well.
    do {
      this.announceDrops(runId, true);
      this.seal();
      await this.until(() => !this.unsettled.has(runId), deadline - Date.now());
    } while (!this.unsettled.has(runId) && this.unannounced(runId) && Date.now() < deadline && !this.closed);
    const drops = this.drops.get(runId);
    if (drops && drops.lines === 0) this.drops.delete(runId);
  }

  private unannounced(runId: string): boolean {
    return (this.drops.get(runId)?.lines ?? 0) > 0;
  }

  async close(timeoutMs: number): Promise<void> {
    for (const runId of [...this.drops.keys()]) this.announceDrops(runId, true);
    this.seal();
    await this.until(() => this.unsettled.size === 0, timeoutMs);
    this.closed = true;
    this.stopped.abort();
    // Retries waiting for a connection end now, as shutdown drops.
    this.wake();
    // Only what never left is dropped here; a batch in flight is counted once, when it ends.
    for (const batch of this.ready.splice(0)) {
      this.liveStats.dropped.shutdown += batch.takeLive();
      this.waitingLines -= batch.count;
      this.settle(batch, 'shutdown');
    }
    this.publisher.close();
  }

  /** Queues a line within what `reserved` covers; false (nothing queued or reserved) when it is too big. */
  private enqueue(binding: RunBinding, line: QueuedLine, marker: boolean, reserved: number): boolean {
    const run = subjectsOf(binding);
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
    const held = batch.add(run, line, this.connected, marker, this.maxPayload);
    if (held === TOO_BIG) {
      this.budget.release(reserved);
      return false;
    }
    // Live viewers get what happens now: a line logged while NATS is away is skipped, not replayed.
    if (!this.connected) this.liveStats.dropped.disconnected += 1;
    // What was reserved was the message and its columns; the batch says what it really holds.
    if (held > reserved) this.budget.force(held - reserved);
    else this.budget.release(reserved - held);
    if (batch.full) this.seal();
    return true;
  }

  private seal(): void {
    if (!this.open) return;
    if (this.open.count === 0) {
      // Its only line was too big: nothing to send.
      this.spare.push(this.open);
      this.open = undefined;
      return;
    }
    // The next batch is likely alike: sized for it, it needs no growing (copies) as lines come.
    this.lastTextBytes = this.open.messageBytes;
    this.waitingLines += this.open.count;
    // Counted per batch, not per line: until it is sealed, hasUnsettled looks into the open batch.
    this.open.forEachRun(this.trackLines);
    this.ready.push(this.open);
    this.open = undefined;
    this.pump();
  }

  private drop(binding: RunBinding, bytes: number, reason: DropReason, refusal?: string): void {
    this.stats.dropped[reason] += 1;
    this.noteDrops(binding, 1, bytes, reason, refusal);
  }

  /** Remembers lines of a run the sink lost, for its drop notice and its own accounting. */
  private noteDrops(
    binding: RunBinding,
    lines: number,
    bytes: number,
    reason: DropReason,
    refusal?: string,
  ): void {
    const drops = this.drops.get(binding.runId) ?? { binding, lines: 0, bytes: 0, reason, total: 0 };
    drops.lines += lines;
    drops.total += lines;
    drops.bytes += bytes;
    drops.reason = reason;
    drops.refusal = refusal;
    this.drops.set(binding.runId, drops);
  }

  /**
   * Drops of runs whose result is out: no flush of theirs will come to announce them, so they are
   * announced once there is room (a batch was just stored), and forgotten then: an entry left
   * would hold the run's binding for the life of the process.
   */
  private announceLateDrops(): void {
    for (const [runId, drops] of this.drops) {
      if (!drops.binding.resultSent) continue;
      this.announceDrops(runId);
      if (drops.lines === 0) this.drops.delete(runId);
    }
  }

  /** Queues the marker line of a run's unannounced drops, when there is room (or `force`d at its end). */
  private announceDrops(runId: string, force = false): void {
    const drops = this.drops.get(runId);
    if (!drops || drops.lines === 0 || this.closed) return;
    const hint = RAISE_HINT[drops.reason];
    const why =
      drops.reason === 'budget'
        ? 'the log buffer was full'
        : drops.reason === 'overflow'
          ? 'too many lines buffered'
          : (drops.refusal ?? drops.reason.replace('_', ' '));
    const message =
      `[conveyor] ${drops.lines} log line(s) (${drops.bytes} bytes) of this run were not shipped: ` +
      why +
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
    if (!this.enqueue(binding, line, true, cost))
      this.logger.warn(`the drop notice of run ${runId} is too large to send`);
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
      if (isPermanent(err)) {
        this.logger.warn(`${batch.count} log line(s) dropped: the server refused them (${err.message})`);
        return this.finished(batch, 'rejected', `refused by the server: ${err.message}`);
      }
      // A disconnect pauses the clock: the batch is retried after the reconnect.
      if (this.connected && Date.now() - batch.firstTry > RETRY_BUDGET_MS) {
        this.logger.warn(
          `${batch.count} log line(s) dropped after ${batch.attempt} attempts: ${err.message}`,
        );
        return this.finished(
          batch,
          'retries_exhausted',
          `not stored after ${batch.attempt} attempts: ${err.message}`,
        );
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
      while (!this.connected && !this.closed) await this.until(() => this.connected || this.closed, 60_000);
      batch.firstTry = Date.now();
    }
    if (this.closed) return this.finished(batch, 'shutdown');
    this.publish(batch);
  }

  private finished(batch: ConveyorLogBatch, reason?: DropReason, refusal?: string): void {
    this.inFlight -= 1;
    this.inFlightBytes -= batch.wireBytes;
    this.heldInFlight -= batch.wireHeld;
    this.budget.release(batch.wireHeld);
    this.settle(batch, reason, refusal);
    this.pump();
  }

  /** A batch's life ends: stored, or dropped for `reason`. Exactly once per line. */
  private settle(batch: ConveyorLogBatch, reason?: DropReason, refusal?: string): void {
    if (reason) this.stats.dropped[reason] += batch.count;
    else this.stats.sent += batch.count;
    // Lost on the way (not at shutdown, when nothing more is sent): each run's log says so.
    // Drop notices lost with it are not announced again: a stream refusing everything would
    // otherwise answer each notice with another, for ever.
    if (reason && reason !== 'shutdown') batch.forEachRun(this.noteBatchDrops(reason, refusal), true);
    this.budget.release(batch.cost);
    batch.forEachRun(this.untrackLines);
    batch.reset();
    if (this.spare.length < SPARE_BATCHES) this.spare.push(batch);
    if (this.drops.size > 0 && !this.closed) this.announceLateDrops();
  }

  private noteBatchDrops(reason: DropReason, refusal?: string) {
    return (run: RunSubjects, lines: number, bytes: number) =>
      this.noteDrops(run.binding, lines, bytes, reason, refusal);
  }

  private readonly trackLines = (run: RunSubjects, lines: number) => this.track(run.runId, lines);
  private readonly untrackLines = (run: RunSubjects, lines: number) => this.track(run.runId, -lines);

  private track(runId: string, delta: number): void {
    const n = (this.unsettled.get(runId) ?? 0) + delta;
    if (n > 0) this.unsettled.set(runId, n);
    else this.unsettled.delete(runId);
    if (delta < 0) this.wake();
  }

  private wake(): void {
    this.waiters.forEach((check) => check());
  }

  private async watch(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (nc !== this.nc) return;
      if (status.type === 'disconnect') this.connected = false;
      else if (status.type === 'reconnect') {
        this.connected = true;
        // A cluster's nodes may differ: lines are checked against the server answering now.
        this.maxPayload = nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
        this.wake();
        this.pump();
      }
    }
    // Closed for good: what is queued waits for the connection the transport dials next (`use`).
    if (nc === this.nc) this.connected = false;
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
