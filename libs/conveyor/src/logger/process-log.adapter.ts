import { Logger } from '@nestjs/common';
import { PinoLogger } from 'nestjs-pino';
import type { LogLevel } from './log-entry';
import type { LogFields } from './run-logger';

/**
 * Writes a run's line to the process log. Under nestjs-pino, a child of the root pino logger
 * carries the run's bindings: nestjs-pino 4 throws on `assign()` outside an HTTP request, and a
 * reconcile is not one. Without it, Nest's Logger gets the fields as an object (structured under any
 * JSON logger). This file is the only place that knows about pino.
 */
export function writeProcessLog(context: string, level: LogLevel, message: string, fields: LogFields): void {
  const root = PinoLogger.root as PinoLogger['logger'] | undefined;
  if (root) {
    root.child({ context, ...fields })[level](message);
    return;
  }
  const logger = new Logger(context);
  const line = { msg: message, ...fields };
  if (level === 'info') logger.log(line);
  else logger[level](line);
}
