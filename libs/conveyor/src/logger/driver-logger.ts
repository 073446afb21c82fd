import { Injectable } from '@nestjs/common';
import type { Writable } from 'node:stream';
import { LogShipper, LogStats, RunLogCounts } from './log-shipper';
import type { LogFields, LogStreamOptions, RunLogger } from './run-logger';
import { runScope } from './run-scope';

/**
 * The driver's logger, injectable anywhere. Inside a reconcile (found through AsyncLocalStorage, so
 * also in services the handler calls) lines go to the run's sinks: the Conveyor log subjects, Grafana
 * Loki when configured, the legacy subject when enabled, and the process log. Outside a run they go
 * to the process log only.
 */
@Injectable()
export class DriverLogger implements RunLogger {
  constructor(private readonly shipper: LogShipper) {}

  debug(message: string, fields?: LogFields): void {
    this.shipper.write(runScope.getStore(), 'debug', message, fields);
  }

  info(message: string, fields?: LogFields): void {
    this.shipper.write(runScope.getStore(), 'info', message, fields);
  }

  warn(message: string, fields?: LogFields): void {
    this.shipper.write(runScope.getStore(), 'warn', message, fields);
  }

  error(message: string, fields?: LogFields): void {
    this.shipper.write(runScope.getStore(), 'error', message, fields);
  }

  /** A line-splitting `Writable` bound to the current run (captured now, not per write). */
  stream(options?: LogStreamOptions): Writable {
    return this.shipper.loggerFor(runScope.getStore()).stream(options);
  }

  /**
   * Hides these values (replaced by `***`) in every later line of the current run, at any depth of
   * its fields, and in its failure result and dead-letter reason.
   *
   * Outside a run (e.g. in `onModuleInit`, for a token read at startup) the values are masked
   * process-wide instead: in every later line of this driver, in runs or not, in results and dead
   * letters, and in the errors and `/health` bodies the driver's redactor cleans (there only values
   * of 4 characters or more). Masking too much cannot leak, so this is never a silent no-op. At most
   * 1,000 values are masked process-wide, as each is looked for in every line.
   *
   * @throws Error outside a run, when more than 1,000 values would be masked process-wide.
   */
  mask(...values: string[]): void {
    this.shipper.loggerFor(runScope.getStore()).mask(...values);
  }

  /** The current run's lines so far, and how many of them could not be stored. */
  counts(): RunLogCounts {
    return this.shipper.loggerFor(runScope.getStore()).counts();
  }

  /** Lines shipped, late, split, and sent or dropped per sink (by reason). */
  get stats(): LogStats {
    return this.shipper.stats;
  }
}
