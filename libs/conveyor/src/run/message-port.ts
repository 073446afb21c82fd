import type { DeadLetterRecord } from '../settlement/dead-letter';
import type { RunProgress } from '../protocol';
import type { LeaseStore } from '../run-control/resource-leases';

/**
 * One pulled message and the verbs that settle it: what a {@link MessageRun} needs of the broker
 * for a single message. The NATS transport implements it on a JetStream delivery; the testing
 * module on an in-memory record, so both drive the same state machine.
 */
export interface InboundMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  /** Stream the message is stored in (`messages`). */
  readonly stream: string;
  readonly streamSequence: number;
  /** 1 on the first delivery. */
  readonly deliveryCount: number;
  /** When the message was stored in the stream, in ms since the epoch. */
  readonly storedAtMs: number;
  ack(): void;
  /** Redeliver, after `delayMs` when given. */
  nak(delayMs?: number): void;
  /** Never redeliver. */
  term(reason: string): void;
  /** Resets AckWait: the message is still being worked on. */
  working(): void;
}

/** What `publishResult` throws for a result the server refused for good (settlement classifies it). */
export { ResultRefusedError } from '../settlement/result.publisher';

/** What the runs of a connection share: result publishing, its size limit, dead-letter sinks, log flushing. */
export interface ResultPort {
  /**
   * Publishes a result with `Nats-Msg-Id: msgId` and resolves once it is stored.
   * @throws ResultRefusedError when it can never be stored as it is; any other error is transient.
   */
  publishResult(bytes: Uint8Array, msgId: string): Promise<void>;
  /** Largest message (headers included) the server accepts. */
  readonly maxPayload: number;
  /** Hands a record to the dead-letter hook and subject; false when a configured sink failed. */
  deadLetter(record: DeadLetterRecord): Promise<boolean>;
  /** Waits until the run's log lines are stored, so they precede its result. */
  flushRunLogs(runId: string, signal: AbortSignal): Promise<void>;
  /** Publishes a progress report (core NATS, best effort: may throw, never waits). */
  publishProgress(report: RunProgress): void;
  /** Per-resource leases (`@Reconcile({ perResource })`). */
  readonly leases: LeaseStore;
  /** Cancels run `runId` wherever it runs (a superseded run). */
  cancelRun(runId: string, reason: string): Promise<void>;
}
