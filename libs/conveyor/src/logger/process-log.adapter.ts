import { Logger } from '@nestjs/common';
import { PinoLogger } from 'nestjs-pino';
import type { LogLevel } from './log-entry';
import type { LogFields } from './run-logger';
import type { RunBinding } from './run-scope';

let pino: PinoLogger | undefined;

/** Writes one line of a run to the process log. */
export type ProcessLogWriter = (
  level: LogLevel,
  message: string,
  fields: LogFields | undefined,
  extra: LogFields | undefined,
  late: boolean,
) => void;

/**
 * Writes a line to the process log. Under nestjs-pino (its module has set `PinoLogger.root`), a child
 * of the app's out-of-request pino logger carries the fields: nestjs-pino 4 throws on `assign()`
 * outside an HTTP request, and a reconcile is not one. (`PinoLogger.root` itself is pino-http's
 * logger with its own stdout stream; writing there interleaves badly with the app's.) Without
 * nestjs-pino, Nest's Logger gets the fields as an object. The only file that knows pino.
 */
export function writeProcessLog(context: string, level: LogLevel, message: string, fields: LogFields): void {
  if (PinoLogger.root) {
    // Constructed after the app's LoggerModule: it reuses the app's logger instead of making one.
    pino ??= new PinoLogger({});
    pino.logger.child({ context, ...fields })[level](message);
    return;
  }
  nestWrite(new Logger(context), level, message, fields);
}

/**
 * The process-log writer of a run, made once per run: one pino child (or Nest logger) with the
 * run's fields bound, instead of a new child and a fields object per line.
 */
export function processLogOf(binding: RunBinding): ProcessLogWriter {
  if (binding.processLog) return binding.processLog as ProcessLogWriter;
  const runFields = {
    run_id: binding.runId,
    driver: binding.driver,
    event: binding.event,
    resource: binding.resource,
    resource_type: binding.resourceType,
  };
  let writer: ProcessLogWriter;
  if (PinoLogger.root) {
    pino ??= new PinoLogger({});
    const child = pino.logger.child({ context: binding.driver, ...runFields });
    writer = (level, message, fields, extra, late) => {
      if (!fields && !extra && !late) child[level](message);
      else child[level]({ ...extra, ...fields, ...(late ? { late: true } : {}) }, message);
    };
  } else {
    const logger = new Logger(binding.driver);
    writer = (level, message, fields, extra, late) =>
      nestWrite(logger, level, message, {
        ...runFields,
        ...extra,
        ...fields,
        ...(late ? { late: true } : {}),
      });
  }
  binding.processLog = writer;
  return writer;
}

function nestWrite(logger: Logger, level: LogLevel, message: string, fields: LogFields): void {
  const line = { msg: message, ...fields };
  if (level === 'info') logger.log(line);
  else logger[level](line);
}
