import { types } from 'node:util';

/** What a redacted value is replaced with. */
export const REDACTED = '***';

// `scheme://user:password@` or `scheme://token@`: nats.js drops credentials written into a URL, but
// people still write them there, and every error that quotes the URL would print them.
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/@:]+)(?::([^\s/@]*))?@/gi;
const AUTH_SCHEME = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/g;
// An nkey seed: "S" + its kind's prefix letter + base32 (58 characters in all).
const NKEY_SEED = /\bS[AOUNCPX][A-Z2-7]{56}\b/g;
const PRIVATE_KEY_PEM = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g;
/** Shorter values are not masked one by one: a 2-character password would blank every "ab" in a log. */
const MIN_SECRET_LENGTH = 4;

const hideUserinfo = (_match: string, scheme: string, user: string, password?: string): string =>
  password === undefined ? `${scheme}${REDACTED}@` : `${scheme}${user}:${REDACTED}@`;

/** A URL with its password (or its token, when the user part stands alone) replaced by `***`. */
export function redactUrl(url: string): string {
  return url.replace(URL_USERINFO, hideUserinfo);
}

/**
 * Removes secrets from text meant for a person (log lines, errors, `/health` bodies, dead-letter
 * reasons): credentials inside URLs, `Bearer`/`Basic` values, nkey seeds, PEM private keys, and
 * every one of `secrets` (longest first, so a secret that contains another is masked whole).
 */
export function redactText(text: string, secrets: readonly string[] = []): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length >= MIN_SECRET_LENGTH && out.includes(secret)) out = out.split(secret).join(REDACTED);
  }
  return out
    .replace(PRIVATE_KEY_PEM, '[private key]')
    .replace(URL_USERINFO, hideUserinfo)
    .replace(AUTH_SCHEME, (_m, scheme: string) => `${scheme} ${REDACTED}`)
    .replace(NKEY_SEED, REDACTED);
}

/**
 * A redactor bound to the secrets of one configuration: `redact(text)` is {@link redactText} with
 * them. Values below 4 characters are not matched one by one (they would blank ordinary words).
 */
export class SecretRedactor {
  private list: string[];

  constructor(secrets: Iterable<string | undefined> = []) {
    this.list = sortedSecrets(secrets);
  }

  /** The configured secret values, longest first. */
  get secrets(): readonly string[] {
    return this.list;
  }

  /** Adds values to hide from now on (e.g. a key read from a file). */
  add(...secrets: (string | undefined)[]): void {
    this.list = sortedSecrets([...this.list, ...secrets]);
  }

  redact(text: string): string {
    return redactText(text, this.list);
  }

  /** {@link redactText} with these secrets on every string inside `value`, as {@link maskDeep} walks it. */
  redactValue(value: unknown): unknown {
    return maskDeep(value, this.redactBound);
  }

  private readonly redactBound = (text: string): string => this.redact(text);
}

function sortedSecrets(secrets: Iterable<string | undefined>): string[] {
  const unique = new Set<string>();
  for (const s of secrets) if (typeof s === 'string' && s.length >= MIN_SECRET_LENGTH) unique.add(s);
  return [...unique].sort((a, b) => b.length - a.length);
}

/** Levels below the value given to {@link maskDeep} it walks; deeper objects print as `[Object]`/`[Array]`. */
export const MASK_MAX_DEPTH = 8;
/**
 * Entries (array items, object keys, an Error's fields) {@link maskDeep} walks in one value, depth
 * first; the rest is summarised as `[… n more]` (arrays) or a `…` key (objects). A log line's
 * fields are walked on the logging call: a megabyte array must not stall it, nor reach a sink.
 */
export const MASK_MAX_VALUES = 1000;

/** What one {@link maskDeep} call carries down: the mask, the entries left, the objects above. */
interface MaskWalk {
  mask?: (text: string) => string;
  left: number;
  /** Only the ancestors: an object seen twice side by side is no cycle (JSON prints both). */
  ancestors: object[];
}

/**
 * `value` with `mask` applied to every string inside it, at any depth, made safe to serialise:
 * an Error becomes `{ name, message, stack, ...its primitive own fields, cause, errors }` (JSON
 * prints an Error as `{}`), a cycle `[Circular]`, a bigint its digits, binary data its size, an
 * object with `toJSON` what that returns (a URL's `href` carries its password), a property whose
 * getter throws `[unreadable: why]`. Bounded by {@link MASK_MAX_DEPTH} and {@link MASK_MAX_VALUES}.
 *
 * Copy on write: `value` itself is never changed, and a value that needs nothing done (nothing
 * masked, nothing converted) is returned as it is rather than copied.
 */
export function maskDeep(value: unknown, mask?: (text: string) => string): unknown {
  if (typeof value === 'string') return mask ? mask(value) : value;
  if (typeof value === 'bigint') return String(value);
  if (typeof value !== 'object' || value === null) return value;
  return walkObject(value, { mask, left: MASK_MAX_VALUES, ancestors: [] }, 0);
}

function walk(value: unknown, state: MaskWalk, depth: number): unknown {
  if (typeof value === 'string') return state.mask ? state.mask(value) : value;
  if (typeof value === 'bigint') return String(value);
  if (typeof value !== 'object' || value === null) return value;
  return walkObject(value, state, depth);
}

function walkObject(value: object, state: MaskWalk, depth: number): unknown {
  // A Date serialises to its ISO time: nothing in it to mask, and no reason to copy it.
  if (value instanceof Date) return value;
  if (state.ancestors.includes(value)) return '[Circular]';
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer)
    return `[${value.constructor?.name ?? 'binary'} ${value.byteLength} bytes]`;
  if (depth >= MASK_MAX_DEPTH) return Array.isArray(value) ? '[Array]' : '[Object]';
  state.ancestors.push(value);
  try {
    if (isError(value)) return errorFields(value, state, depth);
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') {
      const json: unknown = toJSON.call(value, '');
      if (json !== value) return walk(json, state, depth);
    }
    return Array.isArray(value) ? walkArray(value, state, depth) : walkKeys(value, state, depth);
  } catch (err) {
    return unreadable(err, state);
  } finally {
    state.ancestors.pop();
  }
}

function walkArray(value: unknown[], state: MaskWalk, depth: number): unknown[] {
  let out: unknown[] | undefined;
  const length = value.length;
  let i = 0;
  for (; i < length && state.left > 0; i++) {
    state.left -= 1;
    const item = value[i];
    const safe = walk(item, state, depth + 1);
    if (safe !== item && !out) out = value.slice(0, i);
    if (out) out.push(safe);
  }
  if (i === length) return out ?? value;
  out ??= value.slice(0, i);
  out.push(`[… ${length - i} more]`);
  return out;
}

/** The key that says how many keys of a too-large object were left out. */
const MORE_KEYS = '…';

function walkKeys(value: object, state: MaskWalk, depth: number): object {
  const source = value as Record<string, unknown>;
  // Own enumerable keys: what JSON.stringify and pino print.
  const keys = Object.keys(source);
  let out: Record<string, unknown> | undefined;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    if (state.left <= 0) {
      out ??= copyKeys(source, keys, i);
      out[MORE_KEYS] = `${keys.length - i} more keys`;
      break;
    }
    state.left -= 1;
    let item: unknown = UNREAD;
    let safe: unknown;
    try {
      item = source[key];
      safe = walk(item, state, depth + 1);
    } catch (err) {
      safe = unreadable(err, state);
    }
    if (safe !== item && !out) out = copyKeys(source, keys, i);
    if (out) out[key] = safe;
  }
  return out ?? value;
}

/** Stands for a value whose getter threw: never equal to what it is replaced with. */
const UNREAD = Symbol('unread');

function copyKeys(source: Record<string, unknown>, keys: string[], count: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i < count; i++) out[keys[i]] = source[keys[i]];
  return out;
}

/**
 * An Error, also one of another realm (a vm context, Jest's sandbox) where `instanceof` says no:
 * the native check (a call into V8) only for objects that carry a string `stack`.
 */
function isError(value: object): value is Error {
  return value instanceof Error || (typeof (value as Error).stack === 'string' && types.isNativeError(value));
}

/** Fields of an Error JSON would lose (they are not own enumerable properties). */
const ERROR_FIELDS = new Set(['name', 'message', 'stack', 'cause', 'errors']);

/**
 * An Error as a plain object: name, message and stack (masked: a stack's first line repeats the
 * message), its own primitive fields (`code`, `status`, `errno`…), its `cause` and an
 * AggregateError's `errors`, walked like any value. Own fields holding objects are left out: an
 * HTTP client's error carries its whole request and socket, which would fill the line.
 */
function errorFields(err: Error, state: MaskWalk, depth: number): Record<string, unknown> {
  state.left -= 3;
  const out: Record<string, unknown> = {
    name: walk(err.name, state, depth + 1),
    message: walk(err.message, state, depth + 1),
    stack: walk(err.stack, state, depth + 1),
  };
  for (const key of Object.keys(err)) {
    if (ERROR_FIELDS.has(key) || state.left <= 0) continue;
    const item = (err as unknown as Record<string, unknown>)[key];
    if (typeof item === 'object' && item !== null) continue;
    state.left -= 1;
    out[key] = walk(item, state, depth + 1);
  }
  const { cause, errors } = err as { cause?: unknown; errors?: unknown };
  if (cause !== undefined) out.cause = walk(cause, state, depth + 1);
  if (Array.isArray(errors)) out.errors = walk(errors, state, depth + 1);
  return out;
}

/** What a value that could not be read is shown as; why it could not, masked too. */
function unreadable(err: unknown, state: MaskWalk): string {
  let why: string;
  try {
    why = String((err as Error)?.message ?? err);
  } catch {
    why = 'unknown';
  }
  return `[unreadable: ${state.mask ? state.mask(why) : why}]`;
}
