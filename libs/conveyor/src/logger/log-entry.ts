import type { LogFields } from './run-logger';
import type { RunBinding } from './run-scope';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** One line of a run, stamped and limited once, handed to every sink. */
export interface LogEntry {
  binding: RunBinding;
  level: LogLevel;
  /** Masked and within `maxLineBytes`. */
  message: string;
  /** UTF-8 length of `message` (measured once for every sink). */
  bytes: number;
  /**
   * Masked at any depth like `message`, with Errors as plain `{ name, message, stack, cause }`
   * objects and cycles or oversize parts cut: safe to serialise as it is. The caller's own object
   * when nothing needed doing (copy on write): a sink never changes it.
   */
  fields?: LogFields;
  /** µs since the epoch, and ns within it: strictly increasing per run, the same for every sink. */
  timeUs: number;
  timeSubNs: number;
  /** The run's line sequence (1-based). */
  seq: number;
  /** Logged after the run's result was published. */
  late: boolean;
  /** The active OpenTelemetry span, when the app traces. */
  traceId?: string;
  spanId?: string;
}

/**
 * Why a sink dropped lines: `overflow` (its line cap), `budget` (its or the logger's byte budget),
 * `disconnected` (a live publish while NATS is away), `rejected`, `retries_exhausted`, `shutdown`.
 */
export type DropReason =
  'overflow' | 'budget' | 'disconnected' | 'rejected' | 'retries_exhausted' | 'shutdown';

/** What a sink did with the lines it was given. */
export interface SinkStats {
  sent: number;
  dropped: Record<DropReason, number>;
}

export function emptySinkStats(): SinkStats {
  return {
    sent: 0,
    dropped: { overflow: 0, budget: 0, disconnected: 0, rejected: 0, retries_exhausted: 0, shutdown: 0 },
  };
}

/** A destination of run log lines. `write` never throws and never waits. */
export interface LogSink {
  readonly name: string;
  /**
   * Takes one line. The entry is the shipper's and is reused for the next line: a sink copies
   * what it keeps (lines come by the hundred thousand, and one object less each is GC time).
   */
  write(entry: LogEntry): void;
  /** Resolves once every line of `runId` given so far is stored, or at the deadline. */
  flushRun?(runId: string, timeoutMs: number): Promise<void>;
  /** Sends what is buffered, up to `timeoutMs`; what is left is dropped as `shutdown`. */
  close(timeoutMs: number): Promise<void>;
  readonly stats: SinkStats;
}
