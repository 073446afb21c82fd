import { isPublishSubject, isSubjectToken } from '../protocol';
import { SecretRedactor } from '../security/redact';
import type { DeadLetterRecord } from '../settlement/dead-letter';
import { backoffDelay } from '../util/backoff';
import { ConveyorClientConfig, ConveyorClientOptions, resolveClientConfig } from './client.options';
import {
  ConveyorLogOptions,
  ConveyorLokiOptions,
  LogConfig,
  LokiConfig,
  resolveLogConfig,
} from './log.options';
import {
  Env,
  OptionFields,
  Parse,
  callback,
  echo,
  flag,
  milliseconds,
  oneOf,
  readDelayRange,
  readOptions,
  wholeNumber,
} from './option-schema';
import { ConveyorStartupError } from './startup.error';
import { ApiAuthConfig, ConveyorApiAuthOptions, resolveApiAuth } from './api-auth.options';
import {
  ConveyorNatsAuthOptions,
  ConveyorTlsOptions,
  NatsAuthConfig,
  parseNatsServers,
  privateKeyLines,
  resolveNatsSecurity,
} from './nats-auth.options';

export type { ConveyorTlsOptions } from './nats-auth.options';

/**
 * `afterResult` (default): ack only after the result's PubAck: at-least-once, nothing lost on a crash.
 * `onReceive`: ack before reconciling, like the Go runtime: at-most-once, a crash loses the event.
 */
export type AckMode = 'afterResult' | 'onReceive';

/**
 * How binding treats filter subjects already on the consumer that no handler here serves:
 * `merge` keeps them (safe during rolling deploys), `replace` drops them.
 */
export type ConsumerFilterPolicy = 'merge' | 'replace';

/** What to do when the existing consumer was made by another runtime with settings we cannot fix. */
export type IncompatibleConsumerPolicy = 'warn' | 'refuse';

/** What startup does when a generated `spec` validator's definition changed on the server. */
export type ResourceDriftPolicy = 'warn' | 'refuse' | 'off';

/**
 * Delay before a retry, by the delivery count that failed: exponential from `initialMs`, doubling,
 * capped at `maxMs`, with ±20 % jitter; or your own function.
 */
export type RetryBackoff = { initialMs?: number; maxMs?: number } | ((deliveryCount: number) => number);

/**
 * Options of {@link ConveyorModule}. Every option falls back to an environment variable (trimmed;
 * blank counts as unset), then to a default (see the README's configuration table). A value is read
 * the same way from code, env or a config service: numbers may be numeric strings, booleans are
 * `true`/`false` or `1`/`0` (also as strings; anything else is refused), and every millisecond
 * option is at most 2^31-1 (Node's timer limit). An unknown key is refused with the nearest option.
 */
export interface ConveyorModuleOptions {
  /** Driver name: consumer name and subject token. Env `CONVEYOR_DRIVER_NAME`. Required. */
  driverName?: string;
  /** NATS server URL(s). Env `CONVEYOR_NATS_URL` (comma-separated). Default `nats://127.0.0.1:4222`. */
  servers?: string | string[];
  /** Conveyor API base URL. Env `CONVEYOR_API_URL`, else `CONVEYOR_SERVER_HOST`/`CONVEYOR_SERVER_PORT`. */
  apiUrl?: string;
  /** The ConveyorClient's timeouts, retries and `authorization` header (its `apiUrl` yields to the one above). */
  client?: ConveyorClientOptions;
  /**
   * A network error or 5xx from the API that a handler throws (after the client's own retries) is
   * retried later like a `RetryableError` instead of becoming a failure result: an API outage must
   * not fail the step for good. Env `CONVEYOR_RETRY_API_ERRORS`. Default true.
   */
  retryApiErrors?: boolean;
  /** Runs in flight per instance. Env `CONVEYOR_CONCURRENCY`. Default 1. */
  concurrency?: number;
  /** Env `CONVEYOR_ACK_MODE`. Default `afterResult`. */
  ackMode?: AckMode;
  /** Consumer `max_ack_pending`, applied on creation (or on update when set explicitly). Default 1000. */
  maxAckPending?: number;
  /** Consumer `ack_wait` in ms, applied on creation (or on update when set explicitly). Default 30 000. */
  ackWaitMs?: number;
  /**
   * Deliveries a retryable failure (`RetryableError`, `ctx.retry()`) may use before the run gives up
   * with a failure result. Env `CONVEYOR_MAX_ATTEMPTS`. Default 3. A consumer `max_deliver` below it wins.
   */
  maxAttempts?: number;
  /** Retry delays. Env `CONVEYOR_BACKOFF_INITIAL_MS`, `CONVEYOR_BACKOFF_MAX_MS`. Default 1 s doubling to 60 s. */
  backoff?: RetryBackoff;
  /**
   * Subject that receives a dead-letter record (the raw message with `Conveyor-*` headers) before an
   * undecodable message is terminated. Capture it with a stream to keep the records, e.g.
   * `events.deadletter.<driver>`. Env `CONVEYOR_DEAD_LETTER_SUBJECT`. Default off.
   */
  deadLetterSubject?: string;
  /** Called with every dead-letter record before the message is terminated (and before the subject). */
  onDeadLetter?: (record: DeadLetterRecord) => void | Promise<void>;
  /**
   * How long recording a dead letter (`onDeadLetter` and the subject's PubAck) may take; past it
   * the message is kept (nak'd) for another try instead of terminated, so nothing is lost and a hung
   * hook holds no run. Env `CONVEYOR_DEAD_LETTER_TIMEOUT_MS`. Default 10 000.
   */
  deadLetterTimeoutMs?: number;
  /** Ceiling of one reconcile in ms; 0 turns it off. Env `CONVEYOR_RECONCILE_TIMEOUT_MS`. Default 1 h. */
  reconcileTimeoutMs?: number;
  /** How long shutdown waits for in-flight runs. Env `CONVEYOR_SHUTDOWN_TIMEOUT_MS`. Default 25 000. */
  shutdownTimeoutMs?: number;
  /** Default deadline of each `ctx.onCleanup()` hook in ms. Env `CONVEYOR_CLEANUP_TIMEOUT_MS`. Default 10 000. */
  cleanupTimeoutMs?: number;
  /**
   * How long a cancel for a run not started yet is remembered (the TTL of the `conveyor-run-cancels`
   * KV bucket, set when the bucket is created). Env `CONVEYOR_CANCEL_TTL_MS`. Default 3 600 000 (1 h).
   */
  cancelTtlMs?: number;
  /**
   * TTL of a resource lease (`@Reconcile({ perResource })`) that is not renewed: how long a crashed
   * replica's lease blocks its resource (the `conveyor-run-leases` bucket's TTL, set when the bucket is
   * created; holders renew every third of it). Env `CONVEYOR_LEASE_TTL_MS`. Default 30 000.
   */
  leaseTtlMs?: number;
  /**
   * A message on a subject no handler here serves (a retired resource still in merged filters) is
   * nak'd with a growing delay, and dead-lettered once it is this old (ms since it was stored); 0
   * keeps it forever. Env `CONVEYOR_UNROUTED_DEAD_LETTER_MS`. Default 3 600 000 (1 h).
   */
  unroutedDeadLetterMs?: number;
  /**
   * Filters on the existing consumer that no handler here serves. Env `CONVEYOR_CONSUMER_FILTERS`.
   * Default `merge` (keep them: a newer replica may serve them); `replace` drops them.
   */
  consumerFilters?: ConsumerFilterPolicy;
  /**
   * Before a pipeline step runs, fetch the resource from the API and skip (ack) the step when the
   * resource was deleted or replaced since the event (the newer Go runtime's check). Env
   * `CONVEYOR_STALE_EVENT_GUARD`. Default false.
   */
  staleEventGuard?: boolean;
  /** Existing consumer that is not durable or has max_ack_pending 1. Env `CONVEYOR_INCOMPATIBLE_CONSUMER`. Default `warn`. */
  incompatibleConsumer?: IncompatibleConsumerPolicy;
  /**
   * At startup, when the API answers, the definitions of `@Reconcile({ spec })` validators are
   * compared with the server's (version and schema): `warn` names each one that changed, `refuse`
   * also stops startup, `off` skips the check. An API that does not answer is a warning, never a
   * refusal. Env `CONVEYOR_RESOURCE_DRIFT`. Default `warn`.
   */
  resourceDrift?: ResourceDriftPolicy;
  /** TLS files (`ca` alone, or mTLS). Env `CONVEYOR_TLS_CERT`, `CONVEYOR_TLS_KEY`, `CONVEYOR_TLS_CA`. Default off. */
  tls?: ConveyorTlsOptions;
  /** NATS credentials (one mode). Env `CONVEYOR_NATS_USER`/`_PASSWORD`, `_TOKEN`, `_NKEY`, `_CREDS`. Default none. */
  natsAuth?: ConveyorNatsAuthOptions;
  /** Proof-of-possession JWTs for an API with `auth_enabled`. Env `CONVEYOR_API_AUTH`. Default off. */
  apiAuth?: ConveyorApiAuthOptions;
  /** The DriverLogger's Conveyor, legacy and process sinks: timestamps, line limits, masking. */
  logs?: ConveyorLogOptions;
  /** The Grafana Loki sink, on when `url` (env `LOKI_URL`) is set. */
  loki?: ConveyorLokiOptions;
}

/** Options after env fallbacks, defaults and validation. */
export interface ConveyorConfig {
  driverName: string;
  servers: string[];
  apiUrl: string;
  client: ConveyorClientConfig;
  retryApiErrors: boolean;
  concurrency: number;
  ackMode: AckMode;
  maxAckPending: number;
  ackWaitMs: number;
  maxAttempts: number;
  /** Delay before the retry of a failed delivery (the resolved `backoff`). */
  retryDelayMs: (deliveryCount: number) => number;
  deadLetterSubject?: string;
  onDeadLetter?: (record: DeadLetterRecord) => void | Promise<void>;
  reconcileTimeoutMs: number;
  shutdownTimeoutMs: number;
  cleanupTimeoutMs: number;
  deadLetterTimeoutMs: number;
  cancelTtlMs: number;
  leaseTtlMs: number;
  unroutedDeadLetterMs: number;
  incompatibleConsumer: IncompatibleConsumerPolicy;
  resourceDrift: ResourceDriftPolicy;
  consumerFilters: ConsumerFilterPolicy;
  staleEventGuard: boolean;
  tls?: ConveyorTlsOptions;
  natsAuth?: NatsAuthConfig;
  apiAuth?: ApiAuthConfig;
  /** Hides the configured secrets (and credentials in URLs) in every text meant for output. */
  redactor: SecretRedactor;
  logs: LogConfig;
  loki?: LokiConfig;
  /** Options given in code or env rather than defaulted: only these may change an existing consumer. */
  explicit: ReadonlySet<keyof ConveyorModuleOptions>;
}

/** Thrown at startup for invalid configuration; lists every problem with the option and env var. */
export class ConveyorConfigError extends ConveyorStartupError {
  /** Each problem found, one line each (also the message's list). */
  declare readonly problems: string[];
  constructor(problems: string[]) {
    super(`Invalid Conveyor configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    // Not enumerable: Nest's logger would print the list a second time after the message.
    Object.defineProperty(this, 'problems', { value: problems, enumerable: false });
  }
}

const subjectToken: Parse<string> = (input) =>
  isSubjectToken(input)
    ? { value: input }
    : {
        error:
          'must be a non-empty name without whitespace, ".", "*", ">", "/" or "\\" (it is a NATS subject token)',
      };

const publishSubject: Parse<string> = (input) =>
  isPublishSubject(input)
    ? { value: input }
    : { error: 'must be a NATS subject of dot-separated tokens without wildcards or whitespace' };

/** Options resolved by their own sections (objects, derived values) rather than the table below. */
type StructuredKey =
  | 'explicit'
  | 'tls'
  | 'natsAuth'
  | 'apiAuth'
  | 'redactor'
  | 'retryDelayMs'
  | 'logs'
  | 'loki'
  | 'apiUrl'
  | 'client';
type TableKey = Exclude<keyof ConveyorConfig, StructuredKey>;

/**
 * Module options read by their own resolvers: known here, so not refused as unknown. A record
 * rather than a list so the compiler checks that every option is read somewhere.
 */
const ELSEWHERE: Record<Exclude<keyof ConveyorModuleOptions, TableKey>, true> = {
  apiUrl: true,
  client: true,
  backoff: true,
  tls: true,
  natsAuth: true,
  apiAuth: true,
  logs: true,
  loki: true,
};

const FIELDS: OptionFields<Pick<ConveyorConfig, TableKey>> = {
  driverName: { env: 'CONVEYOR_DRIVER_NAME', parse: subjectToken, required: true },
  servers: { env: 'CONVEYOR_NATS_URL', parse: parseNatsServers, default: ['nats://127.0.0.1:4222'] },
  retryApiErrors: { env: 'CONVEYOR_RETRY_API_ERRORS', parse: flag, default: true },
  concurrency: { env: 'CONVEYOR_CONCURRENCY', parse: wholeNumber(1), default: 1 },
  ackMode: { env: 'CONVEYOR_ACK_MODE', parse: oneOf('afterResult', 'onReceive'), default: 'afterResult' },
  maxAckPending: { env: 'CONVEYOR_MAX_ACK_PENDING', parse: wholeNumber(1), default: 1000 },
  ackWaitMs: { env: 'CONVEYOR_ACK_WAIT_MS', parse: milliseconds(1000), default: 30_000 },
  maxAttempts: { env: 'CONVEYOR_MAX_ATTEMPTS', parse: wholeNumber(1), default: 3 },
  deadLetterSubject: { env: 'CONVEYOR_DEAD_LETTER_SUBJECT', parse: publishSubject },
  onDeadLetter: { parse: callback('(record) => void | Promise<void>') },
  reconcileTimeoutMs: { env: 'CONVEYOR_RECONCILE_TIMEOUT_MS', parse: milliseconds(0), default: 3_600_000 },
  shutdownTimeoutMs: { env: 'CONVEYOR_SHUTDOWN_TIMEOUT_MS', parse: milliseconds(0), default: 25_000 },
  cleanupTimeoutMs: { env: 'CONVEYOR_CLEANUP_TIMEOUT_MS', parse: milliseconds(1), default: 10_000 },
  deadLetterTimeoutMs: { env: 'CONVEYOR_DEAD_LETTER_TIMEOUT_MS', parse: milliseconds(1), default: 10_000 },
  cancelTtlMs: { env: 'CONVEYOR_CANCEL_TTL_MS', parse: milliseconds(1000), default: 3_600_000 },
  leaseTtlMs: { env: 'CONVEYOR_LEASE_TTL_MS', parse: milliseconds(1000), default: 30_000 },
  unroutedDeadLetterMs: {
    env: 'CONVEYOR_UNROUTED_DEAD_LETTER_MS',
    parse: milliseconds(0),
    default: 3_600_000,
  },
  consumerFilters: { env: 'CONVEYOR_CONSUMER_FILTERS', parse: oneOf('merge', 'replace'), default: 'merge' },
  staleEventGuard: { env: 'CONVEYOR_STALE_EVENT_GUARD', parse: flag, default: false },
  incompatibleConsumer: {
    env: 'CONVEYOR_INCOMPATIBLE_CONSUMER',
    parse: oneOf('warn', 'refuse'),
    default: 'warn',
  },
  resourceDrift: { env: 'CONVEYOR_RESOURCE_DRIFT', parse: oneOf('warn', 'refuse', 'off'), default: 'warn' },
};

/**
 * Applies env fallbacks and defaults, and validates. `env` is what the options fall back to
 * (`process.env` by default; a test hands in its own so the developer's shell cannot leak in).
 * @throws ConveyorConfigError listing every problem, values redacted.
 */
export function resolveConveyorConfig(
  options: ConveyorModuleOptions = {},
  env: Env = process.env,
): ConveyorConfig {
  const problems: string[] = [];
  const { values, explicit } = readOptions('', options, FIELDS, env, problems, Object.keys(ELSEWHERE));
  const security = resolveNatsSecurity(values.servers ?? [], options.natsAuth, options.tls, env, problems);
  const apiAuth = resolveApiAuth(options.apiAuth, security.tls, env, problems);
  const retryDelayMs = resolveBackoff(options.backoff, env, problems);
  const client = resolveClientConfig(
    { ...options.client, apiUrl: options.apiUrl ?? options.client?.apiUrl },
    env,
    problems,
  );
  const logging = resolveLogConfig(options.logs, options.loki, env, problems);
  const redactor = new SecretRedactor([
    ...security.secrets,
    ...(apiAuth && apiAuth.key !== security.tls?.key ? privateKeyLines(apiAuth.key) : []),
    logging.loki?.password,
    logging.loki?.bearerToken,
  ]);
  // The values echoed are redacted already; this also hides the configured secrets themselves.
  if (problems.length > 0) throw new ConveyorConfigError(problems.map((p) => redactor.redact(p)));
  return {
    ...values,
    servers: security.servers,
    retryDelayMs,
    apiUrl: client.apiUrl,
    client,
    ...logging,
    logs: withSecretsMasked(logging.logs, redactor),
    ...(security.tls ? { tls: security.tls } : {}),
    ...(security.natsAuth ? { natsAuth: security.natsAuth } : {}),
    ...(apiAuth ? { apiAuth } : {}),
    redactor,
    explicit: explicit as Set<keyof ConveyorModuleOptions>,
  };
}

function resolveBackoff(
  given: RetryBackoff | undefined,
  env: Env,
  problems: string[],
): (deliveryCount: number) => number {
  if (typeof given === 'function') {
    // A user curve that returns garbage must not nak with NaN: fall back to the default curve then.
    return (n) => {
      const ms = given(n);
      return Number.isFinite(ms) && ms >= 0 ? Math.round(ms) : backoffDelay(n, 1000, 60_000);
    };
  }
  const range = typeof given === 'object' && given !== null ? given : undefined;
  if (given !== undefined && range === undefined)
    problems.push(
      `option "backoff": must be { initialMs?, maxMs? } or a function (deliveryCount) => ms, got ${echo(given)}`,
    );
  const { initialMs, maxMs } = readDelayRange(
    'backoff',
    range,
    {
      initialMs: { env: 'CONVEYOR_BACKOFF_INITIAL_MS', parse: milliseconds(0), default: 1000 },
      maxMs: { env: 'CONVEYOR_BACKOFF_MAX_MS', parse: milliseconds(0), default: 60_000 },
    },
    env,
    problems,
  );
  return (n) => backoffDelay(n, initialMs, maxMs);
}

/** The driver's own secrets never reach a run's log, result or dead letter either (a step may print its env). */
function withSecretsMasked(logs: LogConfig, redactor: SecretRedactor): LogConfig {
  if (redactor.secrets.length === 0) return logs;
  const own = logs.mask;
  return { ...logs, mask: own ? (line) => own(redactor.redact(line)) : (line) => redactor.redact(line) };
}
