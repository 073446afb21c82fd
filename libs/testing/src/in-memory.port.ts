import {
  MESSAGES_STREAM,
  type LogShipper,
  type ConveyorConfig,
  type InboundMessage,
  type ResultPort,
  type DeadLetterRecord,
  type RunProgress,
  type LeaseStore,
  MemoryLeaseStore,
} from '@conveyor-ci/nestjs/internal';

/** The verb a message got, as the broker would have seen it. */
export type RecordedVerb =
  { verb: 'ack' } | { verb: 'nak'; delayMs?: number } | { verb: 'term'; reason: string };

/** A message as the server would deliver it, recording what the run does to it. */
export class InMemoryMessage implements InboundMessage {
  readonly stream = MESSAGES_STREAM;
  readonly storedAtMs = Date.now();
  /** Final verbs in the order sent (a correct run sends exactly one). */
  readonly verbs: RecordedVerb[] = [];
  heartbeats = 0;

  constructor(
    readonly subject: string,
    readonly data: Uint8Array,
    readonly deliveryCount: number,
    readonly streamSequence: number,
  ) {}

  ack(): void {
    this.verbs.push({ verb: 'ack' });
  }
  nak(delayMs?: number): void {
    this.verbs.push({ verb: 'nak', delayMs });
  }
  term(reason: string): void {
    this.verbs.push({ verb: 'term', reason });
  }
  working(): void {
    this.heartbeats += 1;
  }
}

/** Results and dead letters kept in memory, with the same size limit a nats-server applies. */
export class InMemoryResultPort implements ResultPort {
  readonly results: { bytes: Uint8Array; msgId: string }[] = [];
  readonly deadLetters: DeadLetterRecord[] = [];
  /** Every progress report, in the order the run sent them (throttled as on NATS). */
  readonly progress: RunProgress[] = [];

  constructor(
    private readonly config: ConveyorConfig,
    private readonly logs: LogShipper,
    /** nats-server's default `max_payload`. */
    readonly maxPayload = 1024 * 1024,
    /** Shared by every run of a testing module, as the KV bucket is by every replica. */
    readonly leases: LeaseStore = new MemoryLeaseStore(),
    private readonly cancel: (runId: string, reason: string) => void = () => undefined,
  ) {}

  async cancelRun(runId: string, reason: string): Promise<void> {
    this.cancel(runId, reason);
  }

  async publishResult(bytes: Uint8Array, msgId: string): Promise<void> {
    this.results.push({ bytes, msgId });
  }

  async deadLetter(record: DeadLetterRecord): Promise<boolean> {
    try {
      await this.config.onDeadLetter?.(record);
    } catch {
      return false;
    }
    this.deadLetters.push(record);
    return true;
  }

  flushRunLogs(runId: string): Promise<void> {
    return this.logs.flushRun(runId);
  }

  publishProgress(report: RunProgress): void {
    this.progress.push(report);
  }
}
