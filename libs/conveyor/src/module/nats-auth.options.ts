import { existsSync, readFileSync } from 'node:fs';
import { Env, OptionFields, Parse, echo, readOptions, stringValue } from './option-schema';

/**
 * How the driver authenticates to NATS: one of user/password, token, nkey seed file or credentials
 * file (user JWT + seed, as `nsc` writes it). Files are read again at every connection attempt, so
 * rotated credentials are picked up without a restart.
 */
export interface ConveyorNatsAuthOptions {
  /** Env `CONVEYOR_NATS_USER` (with `password`). */
  user?: string;
  /** Env `CONVEYOR_NATS_PASSWORD`. */
  password?: string;
  /** Env `CONVEYOR_NATS_TOKEN`. */
  token?: string;
  /** Path of a file holding an nkey seed (`SU…`). Env `CONVEYOR_NATS_NKEY`. */
  nkey?: string;
  /** Path of a `.creds` file (operator/JWT mode). Env `CONVEYOR_NATS_CREDS`. */
  creds?: string;
}

/** PEM file paths for TLS to the server's NATS: `ca` alone trusts a private CA; `cert` + `key` add mTLS (contract §10.4). */
export interface ConveyorTlsOptions {
  cert?: string;
  key?: string;
  ca?: string;
}

/** The one NATS authentication mode in effect, after env fallbacks and URL credentials. */
export type NatsAuthConfig =
  | { mode: 'user'; user: string; password: string }
  | { mode: 'token'; token: string }
  | { mode: 'nkey'; nkeyFile: string }
  | { mode: 'creds'; credsFile: string };

/** The env variables a person checks when the server refuses a mode's credentials. */
export const NATS_AUTH_ENV: Record<NatsAuthConfig['mode'], string> = {
  user: 'CONVEYOR_NATS_USER / CONVEYOR_NATS_PASSWORD',
  token: 'CONVEYOR_NATS_TOKEN',
  nkey: 'CONVEYOR_NATS_NKEY',
  creds: 'CONVEYOR_NATS_CREDS',
};

const AUTH_FIELDS: OptionFields<ConveyorNatsAuthOptions> = {
  user: { env: 'CONVEYOR_NATS_USER', parse: stringValue },
  password: { env: 'CONVEYOR_NATS_PASSWORD', parse: stringValue, secret: true },
  token: { env: 'CONVEYOR_NATS_TOKEN', parse: stringValue, secret: true },
  nkey: { env: 'CONVEYOR_NATS_NKEY', parse: stringValue },
  creds: { env: 'CONVEYOR_NATS_CREDS', parse: stringValue },
};

const TLS_FIELDS: OptionFields<ConveyorTlsOptions> = {
  cert: { env: 'CONVEYOR_TLS_CERT', parse: stringValue },
  key: { env: 'CONVEYOR_TLS_KEY', parse: stringValue },
  ca: { env: 'CONVEYOR_TLS_CA', parse: stringValue },
};

/** What {@link resolveNatsSecurity} adds to the configuration. */
export interface NatsSecurityConfig {
  servers: string[];
  natsAuth?: NatsAuthConfig;
  tls?: ConveyorTlsOptions;
  /** Secret values to keep out of every output (passwords, tokens, seeds). */
  secrets: string[];
}

// nats.js on Node speaks only the TCP protocol: `ws://`/`wss://` need the websocket client.
const NODE_SCHEMES = ['nats:', 'tls:'];

/**
 * Parses the server list. Refuses schemes the Node client cannot use; never echoes credentials
 * written into a URL (nats.js would ignore them anyway: they are taken out in {@link resolveNatsSecurity}).
 */
export const parseNatsServers: Parse<string[]> = (input) => {
  const list = (Array.isArray(input) ? input : typeof input === 'string' ? input.split(',') : [])
    .map((s) => (typeof s === 'string' ? s.trim() : ''))
    .filter(Boolean);
  if (list.length === 0) return { error: 'must name at least one NATS server URL' };
  for (const server of list) {
    const shown = echo(server);
    let url: URL;
    try {
      url = new URL(server.includes('://') ? server : `nats://${server}`);
    } catch {
      return { error: `${shown} is not a NATS URL (nats://host:port or tls://host:port)`, quotesValue: true };
    }
    if (url.protocol === 'ws:' || url.protocol === 'wss:') {
      return {
        error: `${shown}: the Node NATS client cannot use ${url.protocol}// (websocket); use nats://host:port or tls://host:port (the server's client port)`,
        quotesValue: true,
      };
    }
    if (!NODE_SCHEMES.includes(url.protocol) || !url.hostname)
      return { error: `${shown} is not a NATS URL (nats://host:port or tls://host:port)`, quotesValue: true };
  }
  return { value: list };
};

/**
 * Resolves NATS authentication and TLS with env fallbacks, takes credentials out of the server URLs
 * (options and env win over them), and checks every file; each problem goes to `problems`.
 */
export function resolveNatsSecurity(
  servers: string[],
  auth: ConveyorNatsAuthOptions | undefined,
  tlsOptions: ConveyorTlsOptions | undefined,
  env: Env,
  problems: string[],
): NatsSecurityConfig {
  const fromUrls = splitUrlCredentials(servers, problems);
  const before = problems.length;
  const given = readOptions('natsAuth', auth, AUTH_FIELDS, env, problems).values;
  const anyGiven = Object.values(given).some((v) => v !== undefined);
  // A refused value reads as unset: "user and password must be given together" would only mislead.
  const natsAuth =
    problems.length > before ? undefined : authMode(anyGiven ? given : fromUrls.auth, problems);
  const secrets = [given.password, given.token, fromUrls.auth.password, fromUrls.auth.token].filter(
    (s): s is string => typeof s === 'string',
  );
  if (natsAuth?.mode === 'nkey') secrets.push(...fileSecrets(natsAuth.nkeyFile, 'nkey', problems));
  if (natsAuth?.mode === 'creds') secrets.push(...fileSecrets(natsAuth.credsFile, 'creds', problems));
  const tls = resolveTls(tlsOptions, env, problems);
  if (tls?.key) secrets.push(...privateKeyLines(tls.key));
  return { servers: fromUrls.servers, secrets, ...(natsAuth ? { natsAuth } : {}), ...(tls ? { tls } : {}) };
}

function authMode(given: ConveyorNatsAuthOptions, problems: string[]): NatsAuthConfig | undefined {
  const modes = [
    given.user !== undefined || given.password !== undefined ? 'user/password' : undefined,
    given.token !== undefined ? 'token' : undefined,
    given.nkey !== undefined ? 'nkey' : undefined,
    given.creds !== undefined ? 'creds' : undefined,
  ].filter(Boolean);
  if (modes.length > 1) {
    problems.push(
      `option "natsAuth": ${modes.join(', ')} are set, but NATS takes one way to authenticate: keep one ` +
        '(CONVEYOR_NATS_USER/CONVEYOR_NATS_PASSWORD, CONVEYOR_NATS_TOKEN, CONVEYOR_NATS_NKEY or CONVEYOR_NATS_CREDS)',
    );
    return undefined;
  }
  if (given.user !== undefined || given.password !== undefined) {
    if (!given.user || given.password === undefined) {
      problems.push(
        'option "natsAuth": user and password must be given together (CONVEYOR_NATS_USER, CONVEYOR_NATS_PASSWORD)',
      );
      return undefined;
    }
    return { mode: 'user', user: given.user, password: given.password };
  }
  if (given.token !== undefined) return { mode: 'token', token: given.token };
  if (given.nkey !== undefined) return { mode: 'nkey', nkeyFile: given.nkey };
  if (given.creds !== undefined) return { mode: 'creds', credsFile: given.creds };
  return undefined;
}

/** `nats://user:pw@host` → `nats://host` + user/password; `nats://token@host` → token. */
function splitUrlCredentials(
  servers: string[],
  problems: string[],
): { servers: string[]; auth: ConveyorNatsAuthOptions } {
  let auth: ConveyorNatsAuthOptions = {};
  let seen: string | undefined;
  const stripped = servers.map((server) => {
    const url = new URL(server.includes('://') ? server : `nats://${server}`);
    if (!url.username && !url.password) return server;
    const found: ConveyorNatsAuthOptions = url.password
      ? { user: decodeURIComponent(url.username), password: decodeURIComponent(url.password) }
      : { token: decodeURIComponent(url.username) };
    const key = JSON.stringify(found);
    if (seen !== undefined && seen !== key)
      problems.push('option "servers": the URLs carry different credentials; give them once (natsAuth)');
    seen = key;
    auth = found;
    return `${url.protocol}//${url.host}`;
  });
  return { servers: stripped, auth };
}

/** Checks a credentials file now (a clear startup error) and returns its secret parts for redaction. */
function fileSecrets(file: string, kind: 'nkey' | 'creds', problems: string[]): string[] {
  const envName = kind === 'nkey' ? 'CONVEYOR_NATS_NKEY' : 'CONVEYOR_NATS_CREDS';
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    problems.push(
      `option "natsAuth.${kind}" (env ${envName}): cannot read ${echo(file)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
    return [];
  }
  const seeds = text.match(/\bS[AOUNCPX][A-Z2-7]{56}\b/g) ?? [];
  const hasJwt = /-----BEGIN NATS USER JWT-----/.test(text);
  if (seeds.length === 0 || (kind === 'creds' && !hasJwt)) {
    problems.push(
      `option "natsAuth.${kind}" (env ${envName}): ${echo(file)} is not ${kind === 'nkey' ? 'an nkey seed file (a line starting with SU)' : 'a NATS credentials file (a user JWT and an nkey seed)'}`,
    );
  }
  return seeds;
}

/**
 * The base64 lines of a PEM private key: a step that prints the key file writes it line by line, so
 * each line must be hidden on its own (a whole-PEM pattern never sees them together).
 */
export function privateKeyLines(file: string): string[] {
  try {
    return readFileSync(file, 'utf8')
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line.length >= 16 && !line.startsWith('-----'));
  } catch {
    return [];
  }
}

function resolveTls(
  given: ConveyorTlsOptions | undefined,
  env: Env,
  problems: string[],
): ConveyorTlsOptions | undefined {
  const tls = readOptions('tls', given, TLS_FIELDS, env, problems).values;
  if (!tls.cert && !tls.key && !tls.ca) return undefined;
  if (!tls.cert !== !tls.key)
    problems.push('option "tls": cert and key must be given together (CONVEYOR_TLS_CERT, CONVEYOR_TLS_KEY)');
  for (const part of ['cert', 'key', 'ca'] as const) {
    const file = tls[part];
    if (file && !existsSync(file)) problems.push(`option "tls.${part}": file ${echo(file)} does not exist`);
  }
  return tls;
}
