import type { LoggerService } from '@nestjs/common';
import type { JetStreamClient, JsMsg } from 'nats';
import { RESULT_SUBJECT } from '../protocol';
import { backoffDelay, sleep } from '../transport/backoff';
import type { Settlement } from './settlement.policy';

/**
 * Publishes a result and waits for its PubAck, retrying with backoff until stored or `signal`
 * aborts. `msgId` goes into `Nats-Msg-Id`, so a retry after a lost PubAck is stored once
 * (JetStream de-duplication; the server ignores headers: contract §5.3).
 * @returns whether the result was stored.
 */
export async function publishResult(
  js: JetStreamClient,
  bytes: Uint8Array,
  msgId: string,
  logger: LoggerService,
  signal: AbortSignal,
  onRetry?: () => void,
): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    try {
      await js.publish(RESULT_SUBJECT, bytes, { msgID: msgId, timeout: 5000 });
      return true;
    } catch (err) {
      if (signal.aborted) return false;
      onRetry?.();
      logger.warn(
        `publishing result ${msgId} failed (attempt ${attempt}): ${(err as Error).message}; retrying`,
      );
      await sleep(backoffDelay(attempt, 250, 5000), signal);
      if (signal.aborted) return false;
    }
  }
}

/**
 * Sends the final verb. This (and `publishResult` before it) is the only place a message is
 * settled. `ackAck` waits for the server, so a lost ack shows up here instead of as a surprise
 * redelivery later.
 */
export async function applyVerb(msg: JsMsg, settlement: Settlement, logger: LoggerService): Promise<void> {
  try {
    switch (settlement.action) {
      case 'ack':
        if (!(await msg.ackAck({ timeout: 5000 })))
          logger.warn(`ack of stream seq ${msg.seq} was not confirmed`);
        return;
      case 'nak':
        msg.nak(settlement.delayMs);
        return;
      case 'term':
        msg.term(settlement.reason.slice(0, 1024));
        return;
    }
  } catch (err) {
    // The message is redelivered after AckWait: a duplicate, never a loss.
    logger.warn(`${settlement.action} of stream seq ${msg.seq} failed: ${(err as Error).message}`);
  }
}
