import {
  Env,
  OptionFields,
  callback,
  flag,
  httpUrl,
  milliseconds,
  oneOf,
  readOptions,
  stringValue,
  wholeNumber,
} from './option-schema';

/** Options of the DriverLogger's sinks (`logs` in {@link ConveyorModuleOptions}). */
export interface ConveyorLogOptions {
  /** Conveyor sink: JetStream `logs.{runId}` + core `live.logs.{runId}.{driver}`. Default true. */
  conveyor?: boolean;
  /**
   * `rfc3339` (UTC, 9 fraction digits, strictly increasing per run: lines replay in order) or Go's
   * `unix` seconds. Env `CONVEYOR_LOG_TIMESTAMP`. Default `rfc3339`.
   */
  timestampFormat?: 'rfc3339' | 'unix';
  /** Also publish on the seed's core subject `driver:{driver}:logs:{runId}`. Env `CONVEYOR_LOG_LEGACY_SUBJECT`. Default false. */
  legacySubject?: boolean;
  /** Lines longer than this (UTF-8 bytes) are split or truncated. Env `CONVEYOR_LOG_MAX_LINE_BYTES`. Default 32 KiB. */
  maxLineBytes?: number;
  /** What to do with an oversize line. Default `split`. */
  oversize?: 'split' | 'truncate';
  /** Lines each sink buffers before it drops (counted). Default 100 000. */
  maxBufferLines?: number;
  /**
   * Bytes each sink buffers before it drops (counted, announced in the run's log), within
   * `maxTotalBytes`. Default 64 MiB: one sink may use the whole budget.
   */
  maxBufferBytes?: number;
  /**
   * Bytes the whole logger buffers across sinks: no amount of step output grows the heap past it.
   * Env `CONVEYOR_LOG_MAX_BYTES`. Default 64 MiB.
   */
  maxTotalBytes?: number;
  /**
   * Also copy lines written to `logger.stream()` (step output) into the process log. Off by default:
   * a step printing megabytes would flood the driver's own stdout. Env `CONVEYOR_LOG_STREAMS_TO_PROCESS_LOG`.
   */
  streamsToProcessLog?: boolean;
  /** With `streamsToProcessLog`, at most this many bytes of step output per second (the rest counted). Default 256 KiB. */
  processLogBytesPerSecond?: number;
  /** How long shutdown waits for sinks to flush. Default 5 000 ms. */
  flushTimeoutMs?: number;
  /** Rewrites every line before it leaves the process, e.g. to hide tokens. */
  mask?: (line: string) => string;
}

/** Options of the Grafana Loki sink (`loki`); the sink is on when `url` (or `LOKI_URL`) is set. */
export interface ConveyorLokiOptions {
  /** Base URL, e.g. `http://loki:3100`. Env `LOKI_URL`. */
  url?: string;
  /** `X-Scope-OrgID` for multi-tenant Loki. Env `LOKI_TENANT`. */
  tenant?: string;
  /** Basic auth user (with `password`). Env `LOKI_USERNAME`. Credentials in `url` are taken out and used as these. */
  username?: string;
  /** Basic auth password. Env `LOKI_PASSWORD`. */
  password?: string;
  /** `Authorization: Bearer` token instead of basic auth. Env `LOKI_BEARER_TOKEN`. */
  bearerToken?: string;
  /**
   * The seed's label layout (`driver`, `event`, `id`, `run_id` as labels) instead of `driver`, `level`,
   * `event` labels with `run_id` and the message id as structured metadata. Env `LOKI_LEGACY_LABELS`.
   */
  legacyLabels?: boolean;
  /** A batch is sent when it reaches this size (bytes of lines). Default 1 MiB. */
  batchBytes?: number;
  /** …or when its oldest line is this old. Default 1 000 ms. */
  batchIntervalMs?: number;
  /**
   * How long a push may wait while the Conveyor sink is storing lines, counted from the batch's
   * oldest line (a push never waits while Loki's buffer holds half its byte budget). On a small
   * node a push (JSON, gzip, the request) takes CPU from the NATS server storing the lines a
   * result waits for; Loki readers see a flood's lines up to this much later. Default 5 000 ms.
   */
  deferMaxMs?: number;
  /** Per request. Default 10 000 ms. */
  timeoutMs?: number;
}

export interface LogConfig {
  conveyor: boolean;
  timestampFormat: 'rfc3339' | 'unix';
  legacySubject: boolean;
  maxLineBytes: number;
  oversize: 'split' | 'truncate';
  maxBufferLines: number;
  maxBufferBytes: number;
  maxTotalBytes: number;
  streamsToProcessLog: boolean;
  processLogBytesPerSecond: number;
  flushTimeoutMs: number;
  mask?: (line: string) => string;
}

export interface LokiConfig {
  url: string;
  tenant?: string;
  username?: string;
  password?: string;
  bearerToken?: string;
  legacyLabels: boolean;
  batchBytes: number;
  batchIntervalMs: number;
  deferMaxMs: number;
  timeoutMs: number;
}

const LOG_FIELDS: OptionFields<LogConfig> = {
  conveyor: { parse: flag, default: true },
  timestampFormat: { env: 'CONVEYOR_LOG_TIMESTAMP', parse: oneOf('rfc3339', 'unix'), default: 'rfc3339' },
  legacySubject: { env: 'CONVEYOR_LOG_LEGACY_SUBJECT', parse: flag, default: false },
  // 64 bytes is the floor: a split must make progress even with 4-byte characters.
  maxLineBytes: { env: 'CONVEYOR_LOG_MAX_LINE_BYTES', parse: wholeNumber(64), default: 32 * 1024 },
  oversize: { parse: oneOf('split', 'truncate'), default: 'split' },
  maxBufferLines: { parse: wholeNumber(1), default: 100_000 },
  maxBufferBytes: { parse: wholeNumber(4096), default: 64 * 1024 * 1024 },
  maxTotalBytes: { env: 'CONVEYOR_LOG_MAX_BYTES', parse: wholeNumber(4096), default: 64 * 1024 * 1024 },
  streamsToProcessLog: { env: 'CONVEYOR_LOG_STREAMS_TO_PROCESS_LOG', parse: flag, default: false },
  processLogBytesPerSecond: { parse: wholeNumber(1), default: 256 * 1024 },
  flushTimeoutMs: { parse: milliseconds(0), default: 5000 },
  mask: { parse: callback('(line) => string') },
};

const LOKI_FIELDS: OptionFields<Omit<LokiConfig, 'url'> & { url?: string }> = {
  url: { env: 'LOKI_URL', parse: httpUrl('http://loki:3100') },
  tenant: { env: 'LOKI_TENANT', parse: stringValue },
  username: { env: 'LOKI_USERNAME', parse: stringValue },
  password: { env: 'LOKI_PASSWORD', parse: stringValue, secret: true },
  bearerToken: { env: 'LOKI_BEARER_TOKEN', parse: stringValue, secret: true },
  legacyLabels: { env: 'LOKI_LEGACY_LABELS', parse: flag, default: false },
  batchBytes: { parse: wholeNumber(1), default: 1024 * 1024 },
  batchIntervalMs: { parse: milliseconds(1), default: 1000 },
  deferMaxMs: { parse: milliseconds(0), default: 5000 },
  timeoutMs: { parse: milliseconds(1), default: 10_000 },
};

/**
 * Resolves `logs` and `loki` with env fallbacks; every invalid value is added to `problems`.
 * Kept apart from the module's table: these are nested objects with functions.
 */
export function resolveLogConfig(
  logs: ConveyorLogOptions | undefined,
  loki: ConveyorLokiOptions | undefined,
  env: Env,
  problems: string[],
): { logs: LogConfig; loki?: LokiConfig } {
  const resolvedLogs = readOptions('logs', logs, LOG_FIELDS, env, problems).values;
  // Read (and checked) even without a URL: a typo or a bad value there is a mistake all the same.
  const {
    url: given,
    username,
    password,
    bearerToken,
    tenant,
    ...rest
  } = readOptions('loki', loki, LOKI_FIELDS, env, problems).values;
  if (given === undefined) return { logs: resolvedLogs };
  const fromUrl = splitLokiUrl(given);
  const user = username ?? fromUrl.username;
  const secret = password ?? fromUrl.password;
  if ((user === undefined) !== (secret === undefined))
    problems.push(
      'option "loki": username and password must be given together (LOKI_USERNAME, LOKI_PASSWORD)',
    );
  if (bearerToken !== undefined && user !== undefined)
    problems.push(
      'option "loki": set either basic auth (LOKI_USERNAME/LOKI_PASSWORD) or LOKI_BEARER_TOKEN, not both',
    );
  return {
    logs: resolvedLogs,
    loki: {
      url: fromUrl.url,
      ...(tenant !== undefined ? { tenant } : {}),
      ...(user !== undefined && secret !== undefined ? { username: user, password: secret } : {}),
      ...(bearerToken !== undefined ? { bearerToken } : {}),
      ...rest,
    },
  };
}

/** Takes credentials out of the Loki URL (valid: its field parsed it): `fetch` would put them in its error text. */
function splitLokiUrl(given: string): { url: string; username?: string; password?: string } {
  const url = new URL(given);
  const username = url.username ? decodeURIComponent(url.username) : undefined;
  const password = url.password ? decodeURIComponent(url.password) : undefined;
  url.username = '';
  url.password = '';
  return {
    url: url.toString().replace(/\/+$/, ''),
    ...(username !== undefined ? { username, password: password ?? '' } : {}),
  };
}
