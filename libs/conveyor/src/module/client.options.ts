import { backoffDelay } from '../util/backoff';

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

type Env = Record<string, string | undefined>;

const DEFAULT_API_URL = 'http://localhost:8080';

/**
 * Resolves the client's options with env fallbacks; every invalid value is added to `problems`
 * (worded like the module's other options: the option, the env var it came from, what is allowed).
 */
export function resolveClientConfig(
  options: ConveyorClientOptions = {},
  env: Env,
  problems: string[],
): ConveyorClientConfig {
  const fromEnv = (name: string) => env[name]?.trim() || undefined;
  const whole = (option: string, given: unknown, envName: string, fallback: number, min: number) => {
    const input = given ?? fromEnv(envName);
    if (input === undefined) return fallback;
    const n = typeof input === 'string' ? Number(input) : input;
    if (typeof n === 'number' && Number.isSafeInteger(n) && n >= min) return n;
    const source = given === undefined ? ` from env ${envName}=${JSON.stringify(input)}` : '';
    problems.push(`option "${option}"${source}: must be a whole number >= ${min}`);
    return fallback;
  };
  const apiUrl = resolveApiUrl(options.apiUrl, env, problems);
  const initialMs = whole(
    'client.retryBackoff.initialMs',
    options.retryBackoff?.initialMs,
    'CONVEYOR_API_RETRY_INITIAL_MS',
    200,
    0,
  );
  const maxMs = whole(
    'client.retryBackoff.maxMs',
    options.retryBackoff?.maxMs,
    'CONVEYOR_API_RETRY_MAX_MS',
    5000,
    0,
  );
  if (maxMs < initialMs)
    problems.push(`option "client.retryBackoff": maxMs (${maxMs}) is below initialMs (${initialMs})`);
  if (options.authorization !== undefined && typeof options.authorization !== 'function')
    problems.push('option "client.authorization": must be a function () => Promise<string | undefined>');
  const url = new URL(apiUrl);
  return {
    apiUrl,
    host: url.hostname,
    port: url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80,
    timeoutMs: whole('client.timeoutMs', options.timeoutMs, 'CONVEYOR_API_TIMEOUT_MS', 10_000, 1),
    retries: whole('client.retries', options.retries, 'CONVEYOR_API_RETRIES', 3, 0),
    retryDelayMs: (retry) => backoffDelay(retry, initialMs, maxMs),
    ...(typeof options.authorization === 'function' ? { authorization: options.authorization } : {}),
  };
}

/** The API URL from the option, `CONVEYOR_API_URL`, or the seed's `CONVEYOR_SERVER_HOST`/`PORT`. */
function resolveApiUrl(given: string | undefined, env: Env, problems: string[]): string {
  const envUrl = env.CONVEYOR_API_URL?.trim() || undefined;
  const [input, source] =
    given !== undefined
      ? [given, 'option "apiUrl"']
      : envUrl !== undefined
        ? [envUrl, `option "apiUrl" from env CONVEYOR_API_URL=${JSON.stringify(envUrl)}`]
        : [legacyApiUrl(env), 'option "apiUrl" from env CONVEYOR_SERVER_HOST/CONVEYOR_SERVER_PORT'];
  try {
    const url = new URL(String(input));
    if (typeof input === 'string' && (url.protocol === 'http:' || url.protocol === 'https:'))
      return input.replace(/\/+$/, '');
  } catch {
    /* reported below */
  }
  problems.push(`${source}: must be an http(s) URL such as ${DEFAULT_API_URL}`);
  return DEFAULT_API_URL;
}

/**
 * `CONVEYOR_SERVER_HOST` held a full URL in the server's own code but a bare host in the Python SDK
 * (contract §2.3), so accept both: a value with `://` is a URL, anything else a host joined with
 * `CONVEYOR_SERVER_PORT` (default 8080).
 */
function legacyApiUrl(env: Env): string {
  const host = env.CONVEYOR_SERVER_HOST?.trim();
  if (!host) return DEFAULT_API_URL;
  return host.includes('://') ? host : `http://${host}:${env.CONVEYOR_SERVER_PORT?.trim() || '8080'}`;
}
