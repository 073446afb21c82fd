import { Logger } from '@nestjs/common';

/** Structured fields attached to a log line. */
export type LogFields = Record<string, unknown>;

/**
 * The logger a handler gets on `ctx.logger`, bound to its run. Lines go to the process log (Nest's
 * logger, so nestjs-pino when the app uses it) with the run's fields.
 */
export interface RunLogger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

/**
 * A {@link RunLogger} that writes through Nest's `Logger` with the run's bindings on every line.
 * An object message keeps the fields structured under nestjs-pino (pino merges it into the line).
 */
export function createProcessRunLogger(context: string, bindings: LogFields): RunLogger {
  const logger = new Logger(context);
  const line = (msg: string, fields?: LogFields) => ({ msg, ...bindings, ...fields });
  return {
    debug: (msg, fields) => logger.debug(line(msg, fields)),
    info: (msg, fields) => logger.log(line(msg, fields)),
    warn: (msg, fields) => logger.warn(line(msg, fields)),
    error: (msg, fields) => logger.error(line(msg, fields)),
  };
}
