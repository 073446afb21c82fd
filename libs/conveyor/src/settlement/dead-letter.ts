import type { LoggerService } from '@nestjs/common';
import { ErrorCode, JetStreamClient, NatsConnection, headers } from 'nats';

/**
 * A message the driver gave up on before any handler could run (it could not be decoded), as handed
 * to `onDeadLetter` and published on `deadLetterSubject` just before the message is terminated.
 */
export interface DeadLetterRecord {
  /** Why it could not be processed, e.g. `payload is not valid JSON: …`. */
  reason: string;
  driver: string;
  /** Subject it arrived on. */
  subject: string;
  stream: string;
  streamSequence: number;
  deliveryCount: number;
  /** The message exactly as received, so it can be inspected or republished. */
  payload: Uint8Array;
  /** Run id, when it was readable. */
  runId?: string;
  /** RFC 3339 time the driver gave up. */
  failedAt: string;
  /** Why no failure result was published for the run (absent when one was). */
  noResult?: string;
}

/** Headers of a record published on the dead-letter subject; the body is the raw message. */
export const DEAD_LETTER_HEADERS = {
  reason: 'Conveyor-Dead-Letter-Reason',
  driver: 'Conveyor-Driver',
  subject: 'Conveyor-Original-Subject',
  stream: 'Conveyor-Original-Stream',
  streamSequence: 'Conveyor-Stream-Sequence',
  deliveryCount: 'Conveyor-Delivery-Count',
  runId: 'Conveyor-Run-Id',
  failedAt: 'Conveyor-Failed-At',
  noResult: 'Conveyor-No-Result',
} as const;

export interface DeadLetterSinks {
  onDeadLetter?: (record: DeadLetterRecord) => void | Promise<void>;
  subject?: string;
  nc: NatsConnection;
  js: JetStreamClient;
  logger: LoggerService;
}

const noStreamWarned = new WeakSet<NatsConnection>();

/**
 * Hands `record` to every configured sink. Returns false when a configured sink failed: the caller
 * must then keep the message (nak it) rather than terminate it, so nothing is lost.
 */
export async function recordDeadLetter(record: DeadLetterRecord, sinks: DeadLetterSinks): Promise<boolean> {
  let recorded = true;
  if (sinks.onDeadLetter) {
    try {
      await sinks.onDeadLetter(record);
    } catch (err) {
      sinks.logger.error(
        `onDeadLetter hook failed for stream seq ${record.streamSequence}: ${errorText(err)}`,
      );
      recorded = false;
    }
  }
  if (sinks.subject) recorded = (await publishRecord(record, sinks, sinks.subject)) && recorded;
  return recorded;
}

async function publishRecord(
  record: DeadLetterRecord,
  sinks: DeadLetterSinks,
  subject: string,
): Promise<boolean> {
  const h = headers();
  for (const [field, name] of Object.entries(DEAD_LETTER_HEADERS)) {
    const value = record[field as keyof typeof DEAD_LETTER_HEADERS];
    // A header value is one line of the NATS protocol: a newline in a reason would break it.
    if (value !== undefined)
      h.set(
        name,
        String(value)
          .replace(/[\r\n]+/g, ' ')
          .slice(0, 4096),
      );
  }
  try {
    // The id makes a record published again after a lost PubAck (or a redelivery) stored once.
    await sinks.js.publish(subject, record.payload, {
      headers: h,
      msgID: `deadletter:${record.driver}:${record.stream}:${record.streamSequence}`,
      timeout: 5000,
    });
    return true;
  } catch (err) {
    if ((err as { code?: string }).code !== ErrorCode.NoResponders) {
      sinks.logger.error(`publishing dead-letter record to ${subject} failed: ${errorText(err)}`);
      return false;
    }
    // No stream captures the subject: still deliver it to live subscribers, and say once how to keep records.
    if (!noStreamWarned.has(sinks.nc)) {
      noStreamWarned.add(sinks.nc);
      sinks.logger.warn(
        `no JetStream stream captures dead-letter subject ${subject}: records are published without storage; ` +
          'add a stream on it to keep them',
      );
    }
    sinks.nc.publish(subject, record.payload, { headers: h });
    return true;
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
