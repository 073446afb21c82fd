import { redactUrl } from '../security/redact';

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

type Env = Record<string, string | undefined>;

/** `true`/`false`, or their usual env spellings (`1`, `yes`, `on`…); undefined when neither. */
export const parseFlag = (value: unknown): boolean | undefined => {
  if (typeof value === 'boolean') return value;
  const text = typeof value === 'string' ? value.trim().toLowerCase() : '';
  if (['true', '1', 'yes', 'on'].includes(text)) return true;
  if (['false', '0', 'no', 'off'].includes(text)) return false;
  return undefined;
};

/**
 * Resolves `logs` and `loki` with env fallbacks; every invalid value is added to `problems`.
 * Kept apart from the scalar option table: these are nested objects with functions.
 */
export function resolveLogConfig(
  logs: ConveyorLogOptions = {},
  loki: ConveyorLokiOptions = {},
  env: Env,
  problems: string[],
): { logs: LogConfig; loki?: LokiConfig } {
  const number = (
    name: string,
    given: unknown,
    envName: string | undefined,
    fallback: number,
    min: number,
  ) => {
    const raw = given ?? (envName ? env[envName]?.trim() || undefined : undefined);
    if (raw === undefined) return fallback;
    const n = typeof raw === 'string' ? Number(raw) : raw;
    if (typeof n === 'number' && Number.isSafeInteger(n) && n >= min) return n;
    problems.push(
      `option "${name}"${given === undefined && envName ? ` from env ${envName}` : ''}: must be a whole number >= ${min}`,
    );
    return fallback;
  };
  const bool = (name: string, given: unknown, envName: string, fallback: boolean) => {
    const raw = given ?? (env[envName]?.trim() || undefined);
    if (raw === undefined) return fallback;
    const value = parseFlag(raw);
    if (value === undefined) problems.push(`option "${name}" (env ${envName}): must be true or false`);
    return value ?? fallback;
  };
  const timestampFormat = logs.timestampFormat ?? (env.CONVEYOR_LOG_TIMESTAMP?.trim() || 'rfc3339');
  if (timestampFormat !== 'rfc3339' && timestampFormat !== 'unix') {
    problems.push('option "logs.timestampFormat" (env CONVEYOR_LOG_TIMESTAMP): must be "rfc3339" or "unix"');
  }
  const oversize = logs.oversize ?? 'split';
  if (oversize !== 'split' && oversize !== 'truncate')
    problems.push('option "logs.oversize": must be "split" or "truncate"');
  if (logs.mask !== undefined && typeof logs.mask !== 'function')
    problems.push('option "logs.mask": must be a function');
  const resolvedLogs: LogConfig = {
    conveyor: logs.conveyor ?? true,
    timestampFormat: timestampFormat === 'unix' ? 'unix' : 'rfc3339',
    legacySubject: bool('logs.legacySubject', logs.legacySubject, 'CONVEYOR_LOG_LEGACY_SUBJECT', false),
    // 64 bytes is the floor: a split must make progress even with 4-byte characters.
    maxLineBytes: number(
      'logs.maxLineBytes',
      logs.maxLineBytes,
      'CONVEYOR_LOG_MAX_LINE_BYTES',
      32 * 1024,
      64,
    ),
    oversize: oversize === 'truncate' ? 'truncate' : 'split',
    maxBufferLines: number('logs.maxBufferLines', logs.maxBufferLines, undefined, 100_000, 1),
    maxBufferBytes: number('logs.maxBufferBytes', logs.maxBufferBytes, undefined, 64 * 1024 * 1024, 4096),
    maxTotalBytes: number(
      'logs.maxTotalBytes',
      logs.maxTotalBytes,
      'CONVEYOR_LOG_MAX_BYTES',
      64 * 1024 * 1024,
      4096,
    ),
    streamsToProcessLog: bool(
      'logs.streamsToProcessLog',
      logs.streamsToProcessLog,
      'CONVEYOR_LOG_STREAMS_TO_PROCESS_LOG',
      false,
    ),
    processLogBytesPerSecond: number(
      'logs.processLogBytesPerSecond',
      logs.processLogBytesPerSecond,
      undefined,
      256 * 1024,
      1,
    ),
    flushTimeoutMs: number('logs.flushTimeoutMs', logs.flushTimeoutMs, undefined, 5000, 0),
    ...(typeof logs.mask === 'function' ? { mask: logs.mask } : {}),
  };
  const given = loki.url ?? (env.LOKI_URL?.trim() || undefined);
  if (given === undefined) return { logs: resolvedLogs };
  const { url, username: urlUser, password: urlPassword } = splitLokiUrl(given, problems);
  const read = (value: string | undefined, envName: string) => value ?? (env[envName] || undefined);
  const username = read(loki.username, 'LOKI_USERNAME') ?? urlUser;
  const password = read(loki.password, 'LOKI_PASSWORD') ?? urlPassword;
  const bearerToken = read(loki.bearerToken, 'LOKI_BEARER_TOKEN');
  if ((username === undefined) !== (password === undefined))
    problems.push(
      'option "loki": username and password must be given together (LOKI_USERNAME, LOKI_PASSWORD)',
    );
  if (bearerToken !== undefined && username !== undefined)
    problems.push(
      'option "loki": set either basic auth (LOKI_USERNAME/LOKI_PASSWORD) or LOKI_BEARER_TOKEN, not both',
    );
  return {
    logs: resolvedLogs,
    loki: {
      url,
      tenant: loki.tenant ?? (env.LOKI_TENANT?.trim() || undefined),
      ...(username !== undefined && password !== undefined ? { username, password } : {}),
      ...(bearerToken !== undefined ? { bearerToken } : {}),
      legacyLabels: bool('loki.legacyLabels', loki.legacyLabels, 'LOKI_LEGACY_LABELS', false),
      batchBytes: number('loki.batchBytes', loki.batchBytes, undefined, 1024 * 1024, 1),
      batchIntervalMs: number('loki.batchIntervalMs', loki.batchIntervalMs, undefined, 1000, 1),
      deferMaxMs: number('loki.deferMaxMs', loki.deferMaxMs, undefined, 5000, 0),
      timeoutMs: number('loki.timeoutMs', loki.timeoutMs, undefined, 10_000, 1),
    },
  };
}

/** Validates the Loki URL and takes credentials out of it (`fetch` would put them in its error text). */
function splitLokiUrl(
  given: string,
  problems: string[],
): { url: string; username?: string; password?: string } {
  let url: URL;
  try {
    url = new URL(given);
    if (!['http:', 'https:'].includes(url.protocol)) throw new Error('scheme');
  } catch {
    problems.push(
      `option "loki.url" (env LOKI_URL): ${JSON.stringify(redactUrl(given))} must be an http(s) URL such as http://loki:3100`,
    );
    return { url: given };
  }
  const username = url.username ? decodeURIComponent(url.username) : undefined;
  const password = url.password ? decodeURIComponent(url.password) : undefined;
  url.username = '';
  url.password = '';
  return {
    url: url.toString().replace(/\/+$/, ''),
    ...(username !== undefined ? { username, password: password ?? '' } : {}),
  };
}
