import type { Writable } from 'node:stream';

/**
 * Structured fields attached to a log line. They reach the process log (and `LogEntry.fields` of
 * every sink) masked at any depth; an `Error` among them is written as its name, message, stack
 * and cause. Very deep or large values are cut (`[Object]`, `[… n more]`) rather than walked whole.
 */
export type LogFields = Record<string, unknown>;

/** Options of {@link RunLogger.stream}. */
export interface LogStreamOptions {
  /** Level of every line. Default `info`. */
  level?: 'debug' | 'info' | 'warn' | 'error';
  /** Fields of every line, e.g. `{ step: 'build', stream: 'stderr' }`. */
  fields?: LogFields;
}

/**
 * A logger bound to a run: `ctx.logger`, or the injected `DriverLogger` inside a run. Lines go to
 * every configured sink (Conveyor log subjects, Loki, the legacy subject) and the process log.
 */
export interface RunLogger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /**
   * A `Writable` that logs each line written to it, e.g. `child.stdout.pipe(logger.stream())`.
   * Bound to the run current when it is created.
   */
  stream(options?: LogStreamOptions): Writable;
  /**
   * Hides these values (e.g. secrets from a step's env) in every later line of the run, in its
   * fields at any depth (Errors in them included) and process-log lines, and in its failure
   * result's message and dead-letter reason. The injected `DriverLogger` called outside a run masks
   * process-wide instead (see `DriverLogger.mask`).
   */
  mask(...values: string[]): void;
  /** The run's lines so far, and how many could not be stored (announced in the run's log). */
  counts(): { lines: number; dropped: number };
}
