import { redactText } from '../security/redact';

/**
 * The one reader of options for every section (module, `logs`, `loki`, `client`, `natsAuth`,
 * `tls`, `apiAuth`, `@Reconcile` limits): each option is an {@link OptionField}, read from code,
 * else from its env variable (trimmed; empty counts as unset), else its default, and parsed the
 * same way wherever it came from, since a config service hands over strings as env does. Every
 * problem names the option, where its value came from and what is allowed, and echoes the value
 * redacted. Hand-written rather than ajv: it runs at every startup, and ajv's compiler is not
 * worth loading for thirty scalars.
 */

/** The environment options fall back to: `process.env` in an app, whatever a test hands in. */
export type Env = Readonly<Record<string, string | undefined>>;

/**
 * The longest delay Node's timers keep (2^31-1 ms, about 24.8 days): a longer `setTimeout` fires
 * at once (with a warning), so a 30-day run timeout would end every run straight away.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** The parsed value, or why the input is invalid (`quotesValue`: the reason shows the value already). */
export type Parsed<T> = { value: T } | { error: string; quotesValue?: true };
/** Reads one value given in code, in env or by a config service. */
export type Parse<T> = (input: unknown) => Parsed<T>;

/** One option: how to parse it, its env variable and its default. */
export interface OptionField<T> {
  /** Read when code does not give the option. */
  env?: string;
  parse: Parse<T>;
  /** When neither code nor env gives it; a function derives it from env (legacy variables). */
  default?: T | ((env: Env) => T | undefined);
  /** What a derived default comes from, named in its problem, e.g. `env CONVEYOR_SERVER_HOST`. */
  derivedFrom?: string;
  /** Neither given nor defaulted is a problem. */
  required?: true;
  /** Never echoed in a problem (passwords, tokens). */
  secret?: true;
}

/** The fields of one section, keyed like the resolved type `T`. */
export type OptionFields<T> = { [K in keyof T]-?: OptionField<T[K]> };

/** Whether the option was given in code or env (rather than defaulted). */
type Source = 'code' | 'env' | 'default';

/** The env variable's value, trimmed; undefined when unset or blank. The only env reader of the options. */
export function readEnv(env: Env, name: string): string | undefined {
  return env[name]?.trim() || undefined;
}

/**
 * Reads option `name` (`logs.flushTimeoutMs`) from `given`, else `field.env`, else the default;
 * each problem goes to `problems`, and an invalid value reads as undefined (the caller refuses
 * the configuration when `problems` is not empty).
 */
export function readOption<T>(
  name: string,
  given: unknown,
  field: OptionField<T>,
  env: Env,
  problems: string[],
): { value: T | undefined; source: Source } {
  const fromEnv = given === undefined && field.env ? readEnv(env, field.env) : undefined;
  const source: Source = given !== undefined ? 'code' : fromEnv !== undefined ? 'env' : 'default';
  const input = source === 'code' ? given : source === 'env' ? fromEnv : defaultOf(field, env);
  if (input === undefined) {
    if (field.required)
      problems.push(`option "${name}"${field.env ? ` (env ${field.env})` : ''} is required`);
    return { value: undefined, source };
  }
  const parsed = field.parse(input);
  if ('value' in parsed) return { value: parsed.value, source };
  problems.push(problemOf(name, field, source, input, parsed));
  return { value: undefined, source };
}

function defaultOf<T>(field: OptionField<T>, env: Env): T | undefined {
  return typeof field.default === 'function'
    ? (field.default as (env: Env) => T | undefined)(env)
    : field.default;
}

/**
 * `option "name" <where the value came from>: <why>`, with the value shown once (redacted; never a
 * secret's): in the env source (`from env X="…"`) or after the reason (`, got …`).
 */
function problemOf<T>(
  name: string,
  field: OptionField<T>,
  source: Source,
  input: unknown,
  parsed: { error: string; quotesValue?: true },
): string {
  const value = field.secret || parsed.quotesValue ? undefined : echo(input);
  if (source === 'env')
    return `option "${name}" from env ${field.env}${value ? `=${value}` : ''}: ${parsed.error}`;
  const from =
    source === 'code'
      ? field.env
        ? ` (env ${field.env})`
        : ''
      : ` from ${field.derivedFrom ?? 'its default'}`;
  return `option "${name}"${from}: ${parsed.error}${value ? `, got ${value}` : ''}`;
}

/**
 * Reads every field of a section (`where` prefixes the names: `logs` → `logs.maxLineBytes`) and
 * refuses keys that are not options, suggesting the nearest one. `elsewhere` are keys resolved by
 * the caller (nested objects, functions with their own checks): known, but not read here.
 */
export function readOptions<T extends object>(
  where: string,
  given: unknown,
  fields: OptionFields<T>,
  env: Env,
  problems: string[],
  elsewhere: readonly string[] = [],
): { values: T; explicit: Set<keyof T> } {
  const options = section(where, given, problems);
  const known = [...Object.keys(fields), ...elsewhere];
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) problems.push(unknownOption(where, key, known));
  }
  const values: Partial<T> = {};
  const explicit = new Set<keyof T>();
  for (const key of Object.keys(fields) as (keyof T & string)[]) {
    const { value, source } = readOption(path(where, key), options[key], fields[key], env, problems);
    if (value !== undefined) values[key] = value;
    if (source !== 'default') explicit.add(key);
  }
  // Fields left undefined are optional or invalid; an invalid one makes the caller throw.
  return { values: values as T, explicit };
}

/** The section's options as an object; anything but an object (or nothing) is a problem. */
export function section(where: string, given: unknown, problems: string[]): Record<string, unknown> {
  if (given === undefined || given === null) return {};
  if (typeof given === 'object' && !Array.isArray(given)) return given as Record<string, unknown>;
  problems.push(`option "${where}": must be an object, got ${echo(given)}`);
  return {};
}

/**
 * A `{ initialMs, maxMs }` pair of retry delays (the module's `backoff`, the client's
 * `retryBackoff`), each with its env variable and default; `maxMs` may not be below `initialMs`.
 */
export function readDelayRange(
  where: string,
  given: unknown,
  fields: OptionFields<{ initialMs: number; maxMs: number }>,
  env: Env,
  problems: string[],
): { initialMs: number; maxMs: number } {
  const { values } = readOptions(where, given, fields, env, problems);
  const initialMs = values.initialMs ?? (fields.initialMs.default as number);
  const maxMs = values.maxMs ?? (fields.maxMs.default as number);
  if (maxMs < initialMs)
    problems.push(`option "${where}": maxMs (${maxMs}) is below initialMs (${initialMs})`);
  return { initialMs, maxMs };
}

/** A whole number from `min` to `max`; numeric strings (env, config services) count. */
export function wholeNumber(min: number, max = Number.MAX_SAFE_INTEGER): Parse<number> {
  const range = max < Number.MAX_SAFE_INTEGER ? `>= ${min} and <= ${max}` : `>= ${min}`;
  return numberIn(min, max, `must be a whole number ${range}`);
}

/** A duration in ms that a Node timer can wait: at most {@link MAX_TIMER_MS}. */
export function milliseconds(min: number): Parse<number> {
  return numberIn(
    min,
    MAX_TIMER_MS,
    `must be a whole number >= ${min} and <= ${MAX_TIMER_MS} (2^31-1 ms, about 24.8 days: Node fires a longer timer at once)`,
  );
}

function numberIn(min: number, max: number, error: string): Parse<number> {
  return (input) => {
    const n = typeof input === 'string' && input.trim() !== '' ? Number(input) : input;
    return typeof n === 'number' && Number.isSafeInteger(n) && n >= min && n <= max
      ? { value: n }
      : { error };
  };
}

/**
 * `true`/`false`, `'true'`/`'false'` (any case) or `1`/`0`. Nothing else: `'yes'` or `'off'` is
 * refused rather than guessed, and a string `'false'` is false (a config service returns strings).
 */
export const flag: Parse<boolean> = (input) => {
  const text = typeof input === 'string' ? input.trim().toLowerCase() : input;
  if (text === true || text === 'true' || text === 1 || text === '1') return { value: true };
  if (text === false || text === 'false' || text === 0 || text === '0') return { value: false };
  return { error: 'must be true or false (or 1 or 0)' };
};

/** One of the listed strings. */
export function oneOf<T extends string>(...allowed: T[]): Parse<T> {
  return (input) =>
    allowed.includes(input as T)
      ? { value: input as T }
      : { error: `must be one of ${allowed.map((a) => `"${a}"`).join(', ')}` };
}

/** Any string (file paths, names, credentials). */
export const stringValue: Parse<string> = (input) =>
  typeof input === 'string' ? { value: input } : { error: 'must be a string' };

/** A function; `signature` tells what it is called with. */
export function callback<T>(signature: string): Parse<T> {
  return (input) =>
    typeof input === 'function' ? { value: input as T } : { error: `must be a function ${signature}` };
}

/** An http(s) URL, as given. */
export function httpUrl(example: string): Parse<string> {
  return (input) => {
    try {
      const url = new URL(String(input));
      if (typeof input === 'string' && (url.protocol === 'http:' || url.protocol === 'https:'))
        return { value: input };
    } catch {
      /* reported below */
    }
    return { error: `must be an http(s) URL such as ${example}` };
  };
}

/**
 * A value as a problem shows it: strings quoted, redacted (credentials in URLs, even one missing
 * its `//`, tokens, keys) and shortened; objects and functions by their kind only, since their
 * fields may hold secrets.
 */
export function echo(value: unknown): string {
  if (typeof value === 'string') {
    // Redact before shortening: a cut secret no longer matches the patterns that hide it.
    const shown = redactText(value).replace(/^([^\s/@:]+):[^\s/@]*@/, '$1:***@');
    return JSON.stringify(shown.length > 120 ? `${shown.slice(0, 120)}…` : shown);
  }
  if (value === null || ['number', 'boolean', 'bigint', 'undefined'].includes(typeof value))
    return String(value);
  if (typeof value === 'function') return 'a function';
  return Array.isArray(value) ? 'an array' : 'an object';
}

function path(where: string, key: string): string {
  return where ? `${where}.${key}` : key;
}

function unknownOption(where: string, key: string, known: string[]): string {
  const nearest = suggestion(key, known);
  const problem = `option "${path(where, key)}" is not a Conveyor option`;
  if (nearest) return `${problem}: did you mean "${path(where, nearest)}"?`;
  // A small section's options fit in the message; the module's are in the README's table.
  return where && known.length <= 8 ? `${problem} (${where} takes ${known.join(', ')})` : problem;
}

/** The known key nearest to `key` by edit distance (case aside), if near enough to be a typo of it. */
export function suggestion(key: string, known: readonly string[]): string | undefined {
  const typed = key.toLowerCase();
  let best: { name: string; distance: number } | undefined;
  for (const name of known) {
    const distance = editDistance(typed, name.toLowerCase());
    if (!best || distance < best.distance) best = { name, distance };
  }
  return best && best.distance <= Math.max(1, Math.floor(key.length / 3)) ? best.name : undefined;
}

/** Levenshtein distance: insertions, deletions and substitutions. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j] + 1,
        current[j - 1] + 1,
        previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length];
}
