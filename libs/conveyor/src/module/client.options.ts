import { backoffDelay } from '../util/backoff';
import {
  Env,
  OptionField,
  OptionFields,
  callback,
  httpUrl,
  milliseconds,
  readDelayRange,
  readEnv,
  readOption,
  readOptions,
  wholeNumber,
} from './option-schema';

/**
 * Supplies the `Authorization` header of one API request (e.g. a proof-of-possession JWT signer's
 * `authorizationHeader()`). Called before every attempt, so a short-lived token is fresh on a retry;
 * `undefined` sends no header. Its value never appears in errors or logs.
 */
export type AuthorizationProvider = () => Promise<string | undefined> | string | undefined;

/** Options of {@link ConveyorClient}: standalone (`new ConveyorClient({...})`) or `client` of the module. */
export interface ConveyorClientOptions {
  /**
   * API base URL. Env `CONVEYOR_API_URL`; else `CONVEYOR_SERVER_HOST` (a URL if it has `://`, else a
   * host joined with `CONVEYOR_SERVER_PORT`, default 8080). Default `http://localhost:8080`.
   */
  apiUrl?: string;
  /** Ceiling of one attempt, until the response (for a log stream: until its headers). Env `CONVEYOR_API_TIMEOUT_MS`. Default 10 000. */
  timeoutMs?: number;
  /**
   * Extra attempts of an idempotent call (GET, PUT, DELETE, the upserts) after a network error, a
   * timeout, 429 or a 5xx that is not one of the server's "not found" / "already exists" answers. A
   * create is never sent twice. Env `CONVEYOR_API_RETRIES`. Default 3.
   */
  retries?: number;
  /**
   * Delay before retry n: `initialMs * 2^(n-1)` capped at `maxMs`, ±20 % jitter. Env
   * `CONVEYOR_API_RETRY_INITIAL_MS`, `CONVEYOR_API_RETRY_MAX_MS`. Default 200 doubling to 5 000.
   */
  retryBackoff?: { initialMs?: number; maxMs?: number };
  /** The `Authorization` header per request (when the server has `api.auth_enabled`). Default none. */
  authorization?: AuthorizationProvider;
}

/** {@link ConveyorClientOptions} after env fallbacks, defaults and validation. */
export interface ConveyorClientConfig {
  apiUrl: string;
  /** Host of `apiUrl` (the seed's "API Host"). */
  host: string;
  /** Port of `apiUrl`, the scheme's default when the URL has none. */
  port: number;
  timeoutMs: number;
  retries: number;
  /** Delay before the `retry`-th retry (1-based). */
  retryDelayMs: (retry: number) => number;
  authorization?: AuthorizationProvider;
}

const DEFAULT_API_URL = 'http://localhost:8080';

const API_URL_FIELD: OptionField<string> = {
  env: 'CONVEYOR_API_URL',
  parse: httpUrl(DEFAULT_API_URL),
  default: legacyApiUrl,
  derivedFrom: 'env CONVEYOR_SERVER_HOST/CONVEYOR_SERVER_PORT',
};

const CLIENT_FIELDS: OptionFields<Pick<ConveyorClientConfig, 'timeoutMs' | 'retries' | 'authorization'>> = {
  timeoutMs: { env: 'CONVEYOR_API_TIMEOUT_MS', parse: milliseconds(1), default: 10_000 },
  retries: { env: 'CONVEYOR_API_RETRIES', parse: wholeNumber(0), default: 3 },
  authorization: { parse: callback('() => Promise<string | undefined>') },
};

/**
 * Resolves the client's options with env fallbacks; every invalid value is added to `problems`
 * (worded like the module's other options: the option, the env var it came from, what is allowed).
 */
export function resolveClientConfig(
  options: ConveyorClientOptions = {},
  env: Env,
  problems: string[],
): ConveyorClientConfig {
  // `apiUrl` is named without the `client.` prefix: the module's own `apiUrl` wins over it.
  const given = readOption('apiUrl', options.apiUrl, API_URL_FIELD, env, problems).value;
  const apiUrl = (given ?? DEFAULT_API_URL).trim().replace(/\/+$/, '');
  const { values } = readOptions('client', options, CLIENT_FIELDS, env, problems, ['apiUrl', 'retryBackoff']);
  const { initialMs, maxMs } = readDelayRange(
    'client.retryBackoff',
    options.retryBackoff,
    {
      initialMs: { env: 'CONVEYOR_API_RETRY_INITIAL_MS', parse: milliseconds(0), default: 200 },
      maxMs: { env: 'CONVEYOR_API_RETRY_MAX_MS', parse: milliseconds(0), default: 5000 },
    },
    env,
    problems,
  );
  const url = new URL(apiUrl);
  return {
    apiUrl,
    host: url.hostname,
    port: url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80,
    timeoutMs: values.timeoutMs,
    retries: values.retries,
    retryDelayMs: (retry) => backoffDelay(retry, initialMs, maxMs),
    ...(values.authorization ? { authorization: values.authorization } : {}),
  };
}

/**
 * `CONVEYOR_SERVER_HOST` held a full URL in the server's own code but a bare host in the Python SDK
 * (contract §2.3), so accept both: a value with `://` is a URL, anything else a host joined with
 * `CONVEYOR_SERVER_PORT` (default 8080).
 */
function legacyApiUrl(env: Env): string {
  const host = readEnv(env, 'CONVEYOR_SERVER_HOST');
  if (!host) return DEFAULT_API_URL;
  return host.includes('://') ? host : `http://${host}:${readEnv(env, 'CONVEYOR_SERVER_PORT') ?? '8080'}`;
}
