import { existsSync } from 'node:fs';
import type { ConveyorTlsOptions } from './nats-auth.options';
import { Env, OptionFields, echo, flag, milliseconds, readOptions, stringValue } from './option-schema';

/**
 * Proof-of-possession JWTs for a Conveyor API with `api.auth_enabled: true` (contract §10.4): every
 * request carries a token signed with the client key, whose certificate chain is in its header.
 */
export interface ConveyorApiAuthOptions {
  /** Sign API requests. Env `CONVEYOR_API_AUTH`. Default false. */
  enabled?: boolean;
  /** PEM certificate chain, leaf first. Env `CONVEYOR_API_AUTH_CERT`. Default `tls.cert` (the NATS mTLS one). */
  cert?: string;
  /** PEM private key of the leaf. Env `CONVEYOR_API_AUTH_KEY`. Default `tls.key`. */
  key?: string;
  /** Token lifetime in ms (`exp - iat`). Default 120 000, as the Go client. */
  ttlMs?: number;
}

/** Resolved {@link ConveyorApiAuthOptions}: on, with its files. */
export interface ApiAuthConfig {
  cert: string;
  key: string;
  ttlMs: number;
}

const FIELDS: OptionFields<{ enabled: boolean; cert?: string; key?: string; ttlMs: number }> = {
  enabled: { env: 'CONVEYOR_API_AUTH', parse: flag, default: false },
  cert: { env: 'CONVEYOR_API_AUTH_CERT', parse: stringValue },
  key: { env: 'CONVEYOR_API_AUTH_KEY', parse: stringValue },
  ttlMs: { parse: milliseconds(10_000), default: 120_000 },
};

/** Resolves `apiAuth` with env fallbacks; off unless enabled. Problems go to `problems`. */
export function resolveApiAuth(
  given: ConveyorApiAuthOptions | undefined,
  tls: ConveyorTlsOptions | undefined,
  env: Env,
  problems: string[],
): ApiAuthConfig | undefined {
  const { values } = readOptions('apiAuth', given, FIELDS, env, problems);
  if (!values.enabled) return undefined;
  const cert = values.cert ?? tls?.cert;
  const key = values.key ?? tls?.key;
  if (!cert || !key) {
    problems.push(
      'option "apiAuth": signing API requests needs a certificate and its key: set CONVEYOR_API_AUTH_CERT and ' +
        'CONVEYOR_API_AUTH_KEY, or CONVEYOR_TLS_CERT and CONVEYOR_TLS_KEY (the same pair as NATS mTLS)',
    );
    return undefined;
  }
  for (const [part, file] of [
    ['cert', cert],
    ['key', key],
  ] as const) {
    if (!existsSync(file)) problems.push(`option "apiAuth.${part}": file ${echo(file)} does not exist`);
  }
  return { cert, key, ttlMs: values.ttlMs };
}
