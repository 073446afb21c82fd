/**
 * Scenario (a): the baseline. A hand-written nats.js driver doing the same at-least-once wire work
 * as the framework (pull for free slots, decode, publish the result and await its PubAck, ack) and
 * nothing else, so the framework's overhead is whatever it costs beyond this.
 */
import { connect, type JsMsg } from 'nats';
// Types only: the baseline must not load Nest or the framework at run time.
import type { PipelineEvent, Resource } from '@conveyor-ci/nestjs';
import type { DriverMessage } from '@conveyor-ci/nestjs/internal';
import { announceConsuming, failChild, onStop, readChildConfig } from './child-protocol';

// Literals rather than the framework's constants, for the same reason as the type-only import.
const MESSAGES_STREAM = 'messages';
const RESULT_SUBJECT = 'pipelines.driver.result';
/** How long one pull waits for messages before it is renewed; the backlog is preloaded, so rarely. */
const PULL_EXPIRES_MS = 5_000;

async function main(): Promise<void> {
  const config = readChildConfig();
  const nc = await connect({ servers: config.servers });
  const js = nc.jetstream();
  const consumer = await js.consumers.get(MESSAGES_STREAM, config.driver);
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();

  let inFlight = 0;
  let stopping = false;
  let wake: (() => void) | undefined;
  const wakeUp = () => {
    const resolve = wake;
    wake = undefined;
    resolve?.();
  };
  let batch: Awaited<ReturnType<typeof consumer.fetch>> | undefined;
  onStop(async () => {
    stopping = true;
    wakeUp();
    await batch?.close();
    await nc.close();
  });

  const handle = async (msg: JsMsg): Promise<void> => {
    const message = JSON.parse(decoder.decode(msg.data)) as DriverMessage;
    const resource = JSON.parse(message.payload as string) as Resource;
    const result: PipelineEvent = {
      event: 'driver.result',
      run_id: message.run_id,
      resource,
      driverresult: { success: true, message: '', data: null, driver: config.driver },
    };
    // Same de-duplication id as the framework, so a redelivered message stores its result once.
    await js.publish(RESULT_SUBJECT, encoder.encode(JSON.stringify(result)), {
      msgID: `${message.run_id}:${config.driver}:${message.id}`,
    });
    msg.ack();
  };

  announceConsuming();
  while (!stopping) {
    if (inFlight >= config.concurrency) {
      await new Promise<void>((resolve) => (wake = resolve));
      continue;
    }
    batch = await consumer.fetch({ max_messages: config.concurrency - inFlight, expires: PULL_EXPIRES_MS });
    for await (const msg of batch) {
      inFlight += 1;
      // Each message settles on its own; the loop goes on pulling for the slots that free up.
      // A failure is fatal: a retry here would hide a broken round behind a 30 s redelivery.
      handle(msg)
        .catch(failChild)
        .finally(() => {
          inFlight -= 1;
          wakeUp();
        });
    }
  }
}

main().catch(failChild);
