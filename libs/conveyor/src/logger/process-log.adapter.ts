import { Logger } from '@nestjs/common';
import { PinoLogger } from 'nestjs-pino';
import type { LogLevel } from './log-entry';
import type { LogFields } from './run-logger';

let pino: PinoLogger | undefined;

/**
 * Writes a run's line to the process log. Under nestjs-pino (its module has set `PinoLogger.root`), a
 * child of the app's out-of-request pino logger carries the run's bindings: nestjs-pino 4 throws on
 * `assign()` outside an HTTP request, and a reconcile is not one. (`PinoLogger.root` itself is
 * pino-http's logger with its own stdout stream; writing there interleaves badly with the app's.)
 * Without nestjs-pino, Nest's Logger gets the fields as an object. The only file that knows pino.
 */
export function writeProcessLog(context: string, level: LogLevel, message: string, fields: LogFields): void {
  if (PinoLogger.root) {
    // Constructed after the app's LoggerModule: it reuses the app's logger instead of making one.
    pino ??= new PinoLogger({});
    pino.logger.child({ context, ...fields })[level](message);
    return;
  }
  const logger = new Logger(context);
  const line = { msg: message, ...fields };
  if (level === 'info') logger.log(line);
  else logger[level](line);
}
