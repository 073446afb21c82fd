import type { ConveyorConfig } from '../module/conveyor.options';
import { NATS_AUTH_ENV } from '../module/nats-auth.options';

const CLIENT_CERT_ENV = 'set CONVEYOR_TLS_CERT and CONVEYOR_TLS_KEY';

/** Reads code and message of a nats.js or Node socket/TLS error (nats.js wraps the socket's in `chainedError`). */
function errorParts(err: unknown): { codes: string[]; text: string } {
  const codes: string[] = [];
  const texts: string[] = [];
  type Failure = { code?: unknown; message?: unknown; reason?: unknown; chainedError?: unknown };
  for (let e = err as Failure | undefined; e;) {
    if (typeof e.code === 'string') codes.push(e.code);
    // OpenSSL's message is a long internal trace; its `reason` says the same in a few words.
    if (typeof e.reason === 'string') texts.push(e.reason);
    else if (typeof e.message === 'string') texts.push(e.message);
    e = (e.chainedError ?? undefined) as typeof e;
  }
  if (typeof err === 'string') texts.push(err);
  return { codes, text: texts.join(' / ') };
}

/**
 * Names a NATS connection failure plainly, with what to check: an authorization violation names the
 * env vars of the configured mode, a refused or missing client certificate the TLS vars. The result
 * never carries a secret (the caller redacts it once more anyway).
 */
export function describeNatsFailure(err: unknown, config: Pick<ConveyorConfig, 'natsAuth' | 'tls'>): string {
  const { codes, text } = errorParts(err);
  const has = (...needles: string[]) =>
    needles.some((n) => codes.includes(n) || text.toLowerCase().includes(n.toLowerCase()));
  if (has('AUTHORIZATION_VIOLATION', 'Authorization Violation')) {
    return config.natsAuth
      ? `authorization violation: check ${NATS_AUTH_ENV[config.natsAuth.mode]}`
      : 'authorization violation: the server requires credentials: set CONVEYOR_NATS_USER / CONVEYOR_NATS_PASSWORD, ' +
          'CONVEYOR_NATS_TOKEN, CONVEYOR_NATS_NKEY or CONVEYOR_NATS_CREDS';
  }
  if (has('AUTHENTICATION_EXPIRED', 'Authentication Expired', 'User Authentication Expired'))
    return `the NATS credentials expired: renew ${config.natsAuth ? NATS_AUTH_ENV[config.natsAuth.mode] : 'them'}`;
  if (has('AUTHENTICATION_REVOKED', 'Authentication Revoked'))
    return `the NATS user was revoked: check ${config.natsAuth ? NATS_AUTH_ENV[config.natsAuth.mode] : 'the credentials'}`;
  if (has('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'certificate required', 'alert number 116'))
    return `the server requires a client certificate: ${CLIENT_CERT_ENV}`;
  if (
    has(
      'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
      'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
      'bad certificate',
      'unknown ca',
    )
  )
    return `the server refused the client certificate (not signed by a CA it trusts?): check CONVEYOR_TLS_CERT and CONVEYOR_TLS_KEY (${text})`;
  if (
    has(
      'SELF_SIGNED_CERT_IN_CHAIN',
      'DEPTH_ZERO_SELF_SIGNED_CERT',
      'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
    )
  )
    return `the server's certificate is not trusted: set CONVEYOR_TLS_CA to the CA that signed it (${text})`;
  if (has('ERR_TLS_CERT_ALTNAME_INVALID'))
    return `the server's certificate does not name this host: connect by a name the certificate lists (${text})`;
  if (has('SERVER_OPTION_NOT_AVAILABLE', 'SERVER_OPTION_NA') && /tls/i.test(text))
    return 'TLS is configured but the server does not offer it: drop the tls options or enable TLS on the server';
  if (has('ECONNREFUSED', 'CONNECTION_REFUSED'))
    return `connection refused (is nats-server running there?) (${text})`;
  if (has('TIMEOUT'))
    return `no answer from the server in time (a TLS handshake or the server may hang) (${text})`;
  return text || String(err);
}
