import { AsyncLocalStorage } from 'node:async_hooks';
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

/** What one run sent through the port. */
export interface RunRecord {
  /** Results stored, with their `Nats-Msg-Id`. */
  results: { bytes: Uint8Array; msgId: string }[];
  /** Result publishes tried, stored or not (more than one after a failed publish). */
  publishAttempts: number;
  deadLetters: DeadLetterRecord[];
  /** Progress reports, in the order the run sent them (throttled as on NATS). */
  progress: RunProgress[];
}

/** A result publish held on the wire: see `ConveyorTestingModule.holdResultPublish`. */
export interface HeldResultPublish {
  /** Resolves once a run's result publish is held: the run is `publishing`, its result may be stored. */
  readonly reached: Promise<void>;
  /** Ends the hold: the result is stored, or with `error` the publish fails with it. */
  release(error?: unknown): void;
}

/** What a scripted result publish does instead of storing at once. */
type ScriptedPublish = { throws: unknown } | { held: Promise<void>; reach: () => void };

/**
 * Results, dead letters and progress kept in memory, with the same size limit a nats-server
 * applies. One port serves every run of a testing module, as a connection serves every run of a
 * replica; what each run sent is kept apart by {@link record}, and result publishes can be scripted
 * to fail or hang.
 */
export class InMemoryResultPort implements ResultPort {
  /** The record of the run whose code is calling, found through its async context. */
  private readonly current = new AsyncLocalStorage<RunRecord>();
  private readonly scripted: ScriptedPublish[] = [];

  constructor(
    private readonly config: ConveyorConfig,
    private readonly logs: LogShipper,
    /** nats-server's default `max_payload`. */
    readonly maxPayload = 1024 * 1024,
    /** Shared by every run of a testing module, as the KV bucket is by every replica. */
    readonly leases: LeaseStore = new MemoryLeaseStore(),
    private readonly cancel: (runId: string, reason: string) => void = () => undefined,
  ) {}

  /**
   * Calls `start` (one message's run) and records what that run, and no other, sends through the
   * port: concurrent runs, even of one run id, each get their own record.
   */
  async record<T>(start: () => Promise<T>): Promise<{ value: T; record: RunRecord }> {
    const record: RunRecord = { results: [], publishAttempts: 0, deadLetters: [], progress: [] };
    const value = await this.current.run(record, start);
    return { value, record };
  }

  /** The next `times` result publishes throw `error`. */
  failPublishes(error: unknown, times: number): void {
    for (let i = 0; i < times; i++) this.scripted.push({ throws: error });
  }

  /** The next result publish waits until released. */
  holdPublish(): HeldResultPublish {
    let reach!: () => void;
    const reached = new Promise<void>((resolve) => (reach = resolve));
    let release!: (error?: unknown) => void;
    const held = new Promise<void>(
      (resolve, reject) => (release = (error) => (error === undefined ? resolve() : reject(error))),
    );
    this.scripted.push({ held, reach });
    return { reached, release };
  }

  async cancelRun(runId: string, reason: string): Promise<void> {
    this.cancel(runId, reason);
  }

  async publishResult(bytes: Uint8Array, msgId: string): Promise<void> {
    const record = this.current.getStore();
    if (record) record.publishAttempts += 1;
    const script = this.scripted.shift();
    if (script && 'throws' in script) throw script.throws;
    if (script) {
      script.reach();
      await script.held;
    }
    record?.results.push({ bytes, msgId });
  }

  async deadLetter(deadLetter: DeadLetterRecord): Promise<boolean> {
    try {
      await this.config.onDeadLetter?.(deadLetter);
    } catch {
      return false;
    }
    this.current.getStore()?.deadLetters.push(deadLetter);
    return true;
  }

  flushRunLogs(runId: string): Promise<void> {
    return this.logs.flushRun(runId);
  }

  publishProgress(report: RunProgress): void {
    this.current.getStore()?.progress.push(report);
  }
}
