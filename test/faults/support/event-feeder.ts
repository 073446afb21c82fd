import { randomBytes, randomUUID } from 'node:crypto';
import type { JetStreamClient } from 'nats';
import { encodeGoJson, pipelineStepSubject } from '@conveyor-ci/nestjs/protocol';
import type { DriverMessage } from '@conveyor-ci/nestjs/internal';
import { makeResource, sleep } from '@conveyor-ci/testing';

/** What a published event must end in for the accounting to call it handled. */
export type Expectation = 'success' | 'failure' | 'dead-letter' | 'skipped';

/** One event that has a PubAck, so it is in `messages`: the accounting's list of what must come out. */
export interface LedgerEntry {
  /** Readable run id (absent for a message whose run id is missing or unreadable). */
  runId?: string;
  /** Sequence in `messages`, how a dead-letter record names a message without a run id. */
  seq: number;
  subject: string;
  expect: Expectation;
  /** What the case published, for failure messages. */
  label: string;
}

/** A pipeline step for `driver` whose spec is `spec`, as the engine publishes it. */
export function stepEvent(driver: string, resource: string, spec: unknown, event = 'create') {
  const message: DriverMessage = {
    event,
    payload: encodeGoJson(
      makeResource({ name: `f-${randomUUID().slice(0, 8)}`, resource, pipeline: 'faults', spec }),
    ),
    id: randomBytes(12).toString('hex'),
    run_id: randomUUID(),
  };
  return { subject: pipelineStepSubject(driver, resource), message };
}

/** The reference driver's one-step pipeline running `run`. */
export function shellStep(driver: string, run: string, event = 'create') {
  return stepEvent(driver, 'pipeline', { steps: [{ name: 'work', run }] }, event);
}

/**
 * Publishes events and keeps the ledger of those the server acknowledged. A publish is retried
 * (same `Nats-Msg-Id`, so a retry after a lost PubAck is stored once) until it is acknowledged: a
 * restarting server or a leader election delays it, never drops it from the ledger.
 */
export class EventFeeder {
  readonly ledger: LedgerEntry[] = [];
  /** Publishes that had to be retried (the server was down or electing a leader). */
  retries = 0;

  constructor(
    private readonly js: JetStreamClient,
    private readonly giveUpMs = 120_000,
  ) {}

  /** Publishes a DriverMessage (Go-encoded, as the server does). */
  publish(
    event: { subject: string; message: DriverMessage },
    expect: Expectation = 'success',
    label = 'good',
  ): Promise<LedgerEntry> {
    return this.publishRaw(event.subject, encodeGoJson(event.message), {
      expect,
      label,
      runId: event.message.run_id,
      msgId: event.message.id,
    });
  }

  /** Publishes arbitrary bytes (bad input); `runId` when the case knows the message carries a readable one. */
  async publishRaw(
    subject: string,
    data: string | Uint8Array,
    entry: { expect: Expectation; label: string; runId?: string; msgId?: string },
  ): Promise<LedgerEntry> {
    const msgID = entry.msgId ?? randomBytes(12).toString('hex');
    const deadline = Date.now() + this.giveUpMs;
    for (;;) {
      try {
        const ack = await this.js.publish(subject, data, { msgID, timeout: 3000 });
        const recorded: LedgerEntry = {
          ...(entry.runId ? { runId: entry.runId } : {}),
          seq: ack.seq,
          subject,
          expect: entry.expect,
          label: entry.label,
        };
        this.ledger.push(recorded);
        return recorded;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`publish to ${subject} never acknowledged: ${err}`);
        this.retries += 1;
        await sleep(250);
      }
    }
  }

  /**
   * Publishes `count` events made by `make(i)` with up to `window` publishes in flight, at most
   * `perSecond` a second; `onPublished(n)` runs after each acknowledgement (faults are injected from it).
   */
  async feed(
    count: number,
    make: (i: number) => { subject: string; message: DriverMessage },
    options: {
      window?: number;
      perSecond?: number;
      onPublished?: (published: number) => void | Promise<void>;
    } = {},
  ): Promise<void> {
    const window = options.window ?? 32;
    const started = Date.now();
    let next = 0;
    let published = 0;
    const worker = async () => {
      while (next < count) {
        const i = next++;
        if (options.perSecond) {
          const due = started + (i * 1000) / options.perSecond;
          if (due > Date.now()) await sleep(due - Date.now());
        }
        await this.publish(make(i));
        published += 1;
        await options.onPublished?.(published);
      }
    };
    await Promise.all(Array.from({ length: Math.min(window, count) }, worker));
  }
}
