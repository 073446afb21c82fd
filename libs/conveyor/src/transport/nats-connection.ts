import type { LoggerService } from '@nestjs/common';
import { ConnectionOptions, NatsConnection, connect } from 'nats';
import type { ConveyorConfig } from '../module/conveyor.options';
import { backoffDelay, sleep } from './backoff';

/** NATS connection options for a driver: reconnect forever, fast dead-link detection, mTLS when configured. */
export function natsConnectionOptions(config: ConveyorConfig): ConnectionOptions {
  return {
    servers: config.servers,
    // Same name the Go runtime uses, so `nats server report connections` reads the same (contract §7.1).
    name: `Conveyor Driver Manager - ${config.driverName}`,
    // nats.js defaults to 10 attempts (~20 s) and then closes for good: a driver must never give up.
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1000,
    // The default 2 min ping leaves a half-open link unnoticed for minutes.
    pingInterval: 20_000,
    maxPingOut: 3,
    // nats.js otherwise builds an Error with a stack for every request (each result publish), used or not.
    noAsyncTraces: true,
    ...(config.tls
      ? { tls: { certFile: config.tls.cert, keyFile: config.tls.key, caFile: config.tls.ca } }
      : {}),
  };
}

/**
 * Connects, retrying with backoff until connected or `signal` aborts (then resolves `undefined`).
 * The first connect of nats.js fails fast when the server is down; a driver that starts before its
 * NATS (a normal Kubernetes race) should wait for it instead of crash-looping.
 */
export async function connectWithRetry(
  config: ConveyorConfig,
  logger: LoggerService,
  signal: AbortSignal,
): Promise<NatsConnection | undefined> {
  for (let attempt = 1; !signal.aborted; attempt++) {
    try {
      const nc = await connect(natsConnectionOptions(config));
      logger.log(`connected to NATS ${nc.getServer()}`);
      return nc;
    } catch (err) {
      const delay = backoffDelay(attempt, 500, 10_000);
      if (attempt === 1 || attempt % 10 === 0) {
        logger.warn(
          `cannot connect to NATS ${config.servers.join(', ')} (attempt ${attempt}): ${(err as Error).message}; retrying`,
        );
      }
      await sleep(delay, signal);
    }
  }
  return undefined;
}
