import { existsSync } from 'node:fs';
import { parseFlag } from './log.options';
import type { ConveyorTlsOptions } from './nats-auth.options';

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

type Env = Record<string, string | undefined>;

/** Resolves `apiAuth` with env fallbacks; off unless enabled. Problems go to `problems`. */
export function resolveApiAuth(
  given: ConveyorApiAuthOptions | undefined,
  tls: ConveyorTlsOptions | undefined,
  env: Env,
  problems: string[],
): ApiAuthConfig | undefined {
  const rawEnabled = given?.enabled ?? (env.CONVEYOR_API_AUTH?.trim() || undefined);
  const enabled = rawEnabled === undefined ? false : parseFlag(rawEnabled);
  if (enabled === undefined) {
    problems.push('option "apiAuth.enabled" (env CONVEYOR_API_AUTH): must be true or false');
    return undefined;
  }
  if (!enabled) return undefined;
  const cert = given?.cert ?? (env.CONVEYOR_API_AUTH_CERT?.trim() || undefined) ?? tls?.cert;
  const key = given?.key ?? (env.CONVEYOR_API_AUTH_KEY?.trim() || undefined) ?? tls?.key;
  const ttlMs = given?.ttlMs ?? 120_000;
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
    if (!existsSync(file))
      problems.push(`option "apiAuth.${part}": file ${JSON.stringify(file)} does not exist`);
  }
  if (!Number.isSafeInteger(ttlMs) || ttlMs < 10_000)
    problems.push('option "apiAuth.ttlMs": must be a whole number >= 10000');
  return { cert, key, ttlMs };
}
