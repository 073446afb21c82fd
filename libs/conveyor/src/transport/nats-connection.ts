import { readFileSync } from 'node:fs';
import { ConnectionOptions, credsAuthenticator, nkeyAuthenticator } from 'nats';
import type { ConveyorConfig } from '../module/conveyor.options';
import type { NatsAuthConfig } from '../module/nats-auth.options';

/** Attempts that use the short handshake timeout, so a hanging handshake shows as an error within seconds. */
const QUICK_ATTEMPTS = 3;
const QUICK_TIMEOUT_MS = 3000;
const STEADY_TIMEOUT_MS = 10_000;
/** nats.js's wait between its own reconnect attempts. */
export const RECONNECT_WAIT_MS = 1000;

/**
 * NATS connection options for a driver: reconnect forever (auth errors included), fast dead-link
 * detection, credentials and TLS when configured. `attempt` (1-based) picks the handshake timeout.
 */
export function natsConnectionOptions(config: ConveyorConfig, attempt = 1): ConnectionOptions {
  return {
    servers: config.servers,
    // Same name the Go runtime uses, so `nats server report connections` reads the same (contract §7.1).
    name: `Conveyor Driver Manager - ${config.driverName}`,
    // nats.js defaults to 10 attempts (~20 s) and then closes for good: a driver must never give up.
    maxReconnectAttempts: -1,
    // ...and it also gives up after the same auth error twice in a row, whatever the line above says:
    // credentials fixed on the server (a reload) must let the driver back in without a restart.
    ignoreAuthErrorAbort: true,
    reconnectTimeWait: RECONNECT_WAIT_MS,
    // nats.js waits 20 s for a handshake by default: a server that stalls it would say nothing for that long.
    timeout: attempt <= QUICK_ATTEMPTS ? QUICK_TIMEOUT_MS : STEADY_TIMEOUT_MS,
    // The default 2 min ping leaves a half-open link unnoticed for minutes.
    pingInterval: 20_000,
    maxPingOut: 3,
    // nats.js otherwise builds an Error with a stack for every request (each result publish), used or not.
    noAsyncTraces: true,
    ...authOptions(config.natsAuth),
    ...(config.tls
      ? { tls: { certFile: config.tls.cert, keyFile: config.tls.key, caFile: config.tls.ca } }
      : {}),
  };
}

/** The handshake timeout of an attempt (what a TIMEOUT error means). */
export function handshakeTimeoutMs(attempt: number): number {
  return attempt <= QUICK_ATTEMPTS ? QUICK_TIMEOUT_MS : STEADY_TIMEOUT_MS;
}

function authOptions(auth: NatsAuthConfig | undefined): Partial<ConnectionOptions> {
  switch (auth?.mode) {
    case 'user':
      return { user: auth.user, pass: auth.password };
    case 'token':
      return { token: auth.token };
    // Files are read at every (re)connect: a rotated seed or creds file is used without a restart.
    case 'nkey':
      return { authenticator: nkeyAuthenticator(() => seedOf(readFileSync(auth.nkeyFile, 'utf8'))) };
    case 'creds':
      return { authenticator: credsAuthenticator(() => readFileSync(auth.credsFile)) };
    default:
      return {};
  }
}

/** The seed line of an nkey file (`nsc` writes comments around it). */
function seedOf(text: string): Uint8Array {
  const seed = /\bS[AOUNCPX][A-Z2-7]{56}\b/.exec(text)?.[0];
  if (!seed) throw new Error('the nkey file holds no seed (a line starting with SU)');
  return new TextEncoder().encode(seed);
}
