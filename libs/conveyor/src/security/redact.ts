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
}

function sortedSecrets(secrets: Iterable<string | undefined>): string[] {
  const unique = new Set<string>();
  for (const s of secrets) if (typeof s === 'string' && s.length >= MIN_SECRET_LENGTH) unique.add(s);
  return [...unique].sort((a, b) => b.length - a.length);
}
