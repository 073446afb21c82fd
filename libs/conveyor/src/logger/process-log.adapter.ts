import { Logger, type LoggerService } from '@nestjs/common';
import type { PinoLogger as PinoLoggerType } from 'nestjs-pino';
import { appLoadedPeer } from '../module/optional-peer';
import type { LogLevel } from './log-entry';
import type { LogFields } from './run-logger';
import type { RunBinding } from './run-scope';

let pino: PinoLoggerType | undefined;

/**
 * The app's out-of-request pino logger, when the app uses nestjs-pino's LoggerModule (an optional
 * peer). Only an app that loaded nestjs-pino itself can have set it up: one that has it installed
 * but does not use it never loads it (nor pino) through here.
 */
function appPino(): PinoLoggerType | undefined {
  const PinoLogger = appLoadedPeer<{ PinoLogger: typeof PinoLoggerType }>('nestjs-pino')?.PinoLogger;
  if (!PinoLogger?.root) return undefined;
  // Constructed after the app's LoggerModule: it reuses the app's logger instead of making one.
  pino ??= new PinoLogger({});
  return pino;
}

/** Finds nestjs-pino now, if the app loaded it (at startup, not inside the first run's first log call). */
export function loadProcessLog(): void {
  appLoadedPeer('nestjs-pino');
}

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
  const app = appPino();
  if (app) {
    app.logger.child({ context, ...fields })[level](message);
    return;
  }
  nestWrite(new Logger(context), level, message, fields);
}

/**
 * A transport line (a run's settlement): nestjs-pino gets `fields` as the JSON line's own fields;
 * Nest's logger prints the message alone, since every id appended would make a console line too
 * wide to read.
 */
export function writeTransportLine(
  logger: LoggerService,
  context: string,
  level: LogLevel,
  message: string,
  fields: LogFields,
): void {
  const app = appPino();
  if (app) app.logger.child({ context, ...fields })[level](message);
  else if (level === 'info') logger.log(message);
  else logger[level]?.(message);
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
  const app = appPino();
  if (app) {
    const child = app.logger.child({ context: binding.driver, ...runFields });
    writer = (level, message, fields, extra, late) => {
      if (!fields && !extra && !late) child[level](message);
      else child[level]({ ...extra, ...fields, ...(late ? { late: true } : {}) }, message);
    };
  } else {
    const logger = new Logger(binding.driver);
    // The driver is the logger's context already; the run's fields close each line.
    const runSuffix = formatFields({
      run: binding.runId,
      resource: `${binding.resourceType}/${binding.resource}`,
      event: binding.event,
    });
    writer = (level, message, fields, extra, late) => {
      // Checked first: a run logging thousands of lines at a disabled level builds none of them.
      if (!nestLevelEnabled(level)) return;
      const own =
        fields || extra || late ? formatFields({ ...fields, ...extra, ...(late ? { late: true } : {}) }) : '';
      nestLine(logger, level, message + own + runSuffix);
    };
  }
  binding.processLog = writer;
  return writer;
}

/**
 * Nest's ConsoleLogger prints an object as a multi-line inspection (`Object(6) { msg: ... }`): one
 * entry becomes eight lines. One line instead, the fields appended as `key=value`.
 */
function nestWrite(logger: Logger, level: LogLevel, message: string, fields: LogFields): void {
  nestLine(logger, level, message + formatFields(fields));
}

/**
 * False when the app gave Nest a level list without `level`. Nest's own `isLevelEnabled` says false
 * for every level when there is no list (a custom logger decides itself): then true.
 */
function nestLevelEnabled(level: LogLevel): boolean {
  const levels = (Logger as unknown as { logLevels?: unknown }).logLevels;
  if (!Array.isArray(levels)) return true;
  // Asked once per line: answered from the last list Nest was given until it gets another.
  if (levels !== enabledFor.levels) {
    enabledFor.levels = levels;
    enabledFor.by = {};
  }
  return (enabledFor.by[level] ??= Logger.isLevelEnabled(level === 'info' ? 'log' : level));
}

const enabledFor: { levels?: unknown[]; by: Partial<Record<LogLevel, boolean>> } = { by: {} };

function nestLine(logger: Logger, level: LogLevel, line: string): void {
  if (level === 'info') logger.log(line);
  else logger[level](line);
}

/** ` run=… resource=pipeline/build key=value`: strings with spaces or quotes JSON-quoted. */
export function formatFields(fields: LogFields): string {
  let out = '';
  for (const key in fields) {
    const value = fields[key];
    if (value === undefined || value === '') continue;
    out += ` ${key}=${formatValue(value)}`;
  }
  return out;
}

function formatValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'object' && value !== null) {
    try {
      return JSON.stringify(value);
    } catch {
      return String(value);
    }
  }
  return String(value);
}
