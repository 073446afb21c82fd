import type { JetStreamManager } from 'nats';
import { MESSAGES_STREAM } from '@conveyor-ci/nestjs/internal';
import { waitForSettled } from '@conveyor-ci/testing';

/**
 * Waits until consumer `name` on `messages` has nothing pending and nothing unacknowledged (failing
 * the test otherwise), then returns how many deliveries it made: every event plus every redelivery
 * (retries, naks, expired AckWaits). That is the number to check for "nothing redelivered": the
 * consumer's `num_redelivered` counts messages *waiting* for redelivery, always 0 once nothing is
 * ack-pending.
 */
export async function settledDeliveries(
  jsm: JetStreamManager,
  name: string,
  timeoutMs?: number,
): Promise<number> {
  const { pending, ackPending } = await waitForSettled(jsm, name, timeoutMs);
  expect({ pending, ackPending }).toEqual({ pending: 0, ackPending: 0 });
  return (await jsm.consumers.info(MESSAGES_STREAM, name)).delivered.consumer_seq;
}
