import type { LoggerService } from '@nestjs/common';
import { AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy, JetStreamManager, nanos } from 'nats';
import type { ConveyorConfig } from '../module/conveyor.options';
import { MESSAGES_STREAM, consumerFilterSubjects } from '../protocol';
import { backoffDelay, sleep } from '../util/backoff';

/** JetStream API error codes we branch on (nats-server `server/errors.json`). */
const CONSUMER_NOT_FOUND = 10014;
const STREAM_NOT_FOUND = 10059;

/** The consumer cannot be used as is; the message says why and what to do. */
export class ConsumerBindingError extends Error {
  constructor(
    message: string,
    /** True when waiting can fix it (the server is still creating its streams). */
    readonly retryable = false,
  ) {
    super(message);
    this.name = 'ConsumerBindingError';
  }
}

function apiErrorCode(err: unknown): number | undefined {
  return (err as { api_error?: { err_code?: number } })?.api_error?.err_code;
}

function filtersOf(config: Partial<ConsumerConfig>): string[] {
  return config.filter_subjects?.length
    ? [...config.filter_subjects]
    : config.filter_subject
      ? [config.filter_subject]
      : [];
}

export interface BindOptions {
  /**
   * Re-creating a consumer that was deleted under us: start after this stream sequence (its last
   * known ack floor) instead of delivering everything still in the stream again.
   */
  startAfterSequence?: number;
}

/**
 * Binds the driver's durable pull consumer on `messages` (design.md "Consumer binding"):
 * read the info first; create it with the full config when absent; when present change only the
 * filters and what the user set explicitly, so replicas and other runtimes do not fight over the rest.
 */
export async function bindConsumer(
  jsm: JetStreamManager,
  config: ConveyorConfig,
  resources: string[],
  logger: LoggerService,
  options: BindOptions = {},
): Promise<ConsumerInfo> {
  const name = config.driverName;
  const filters = consumerFilterSubjects(name, resources);
  // An empty filter list would mean every subject of `messages`: other drivers' events.
  if (filters.length === 0)
    throw new ConsumerBindingError('no @Reconcile handlers: refusing to bind a consumer without filters');

  let existing: ConsumerInfo | undefined;
  try {
    existing = await jsm.consumers.info(MESSAGES_STREAM, name);
  } catch (err) {
    const code = apiErrorCode(err);
    if (code === STREAM_NOT_FOUND) {
      throw new ConsumerBindingError(
        `stream "${MESSAGES_STREAM}" does not exist yet: the Conveyor server creates it at startup (is it running?)`,
        true,
      );
    }
    if (code !== CONSUMER_NOT_FOUND) throw err;
  }

  if (!existing) {
    const info = await jsm.consumers.add(MESSAGES_STREAM, {
      durable_name: name,
      name,
      filter_subjects: filters,
      ack_policy: AckPolicy.Explicit,
      ...(options.startAfterSequence
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: options.startAfterSequence + 1 }
        : { deliver_policy: DeliverPolicy.All }),
      max_ack_pending: config.maxAckPending,
      ack_wait: nanos(config.ackWaitMs),
    });
    logger.log(
      `created durable consumer "${name}" on "${MESSAGES_STREAM}" filtering ${filters.join(', ')}` +
        (options.startAfterSequence ? `, starting after stream seq ${options.startAfterSequence}` : ''),
    );
    return info;
  }

  checkCompatible(existing, config, logger);
  const change: Partial<ConsumerConfig> = {};
  const current = filtersOf(existing.config);
  const others = current.filter((f) => !filters.includes(f));
  // Merging is the default: during a rolling deploy an older replica that restarts must not remove
  // the subjects a newer one added, or events for them are dropped (interest retention).
  const wanted = config.consumerFilters === 'merge' ? [...filters, ...others].sort() : filters;
  if (config.consumerFilters === 'merge' && others.length > 0) {
    logger.warn(
      `consumer "${name}" keeps filters no handler here serves: ${others.join(', ')} (another replica or version may). ` +
        "Their messages are nak'd here; once no replica serves them, set consumerFilters: 'replace' to drop them.",
    );
  }
  if ([...current].sort().join() !== wanted.join()) {
    const added = wanted.filter((f) => !current.includes(f));
    const removed = current.filter((f) => !wanted.includes(f));
    logger.log(`consumer "${name}" filters change: +[${added.join(', ')}] -[${removed.join(', ')}]`);
    Object.assign(change, { filter_subjects: wanted, filter_subject: undefined });
  }
  if (config.explicit.has('maxAckPending') && existing.config.max_ack_pending !== config.maxAckPending) {
    change.max_ack_pending = config.maxAckPending;
  }
  if (config.explicit.has('ackWaitMs') && existing.config.ack_wait !== nanos(config.ackWaitMs)) {
    change.ack_wait = nanos(config.ackWaitMs);
  }
  if (Object.keys(change).length === 0) return existing;
  return jsm.consumers.update(MESSAGES_STREAM, name, change);
}

function checkCompatible(info: ConsumerInfo, config: ConveyorConfig, logger: LoggerService): void {
  const name = config.driverName;
  if (info.config.deliver_subject) {
    // Push and pull cannot be switched on an existing consumer; the Python SDK makes push ones.
    throw new ConsumerBindingError(
      `consumer "${name}" on "${MESSAGES_STREAM}" is push-based (made by another runtime?), and this runtime pulls. ` +
        `Stop the other runtime and delete the consumer (nats consumer rm ${MESSAGES_STREAM} ${name}). One runtime per driver name.`,
    );
  }
  const problems: string[] = [];
  if (!info.config.durable_name) {
    problems.push(
      'it is not durable (the Go runtime makes ephemeral ones, deleted ~5 s after the last driver stops: events published meanwhile are lost)',
    );
  }
  if (info.config.max_ack_pending === 1) {
    problems.push(
      'max_ack_pending is 1 (left by a Go runtime: it serialises every replica; set maxAckPending explicitly to change it)',
    );
  }
  if (problems.length === 0) return;
  const text = `existing consumer "${name}" on "${MESSAGES_STREAM}": ${problems.join('; ')}. One runtime per driver name.`;
  if (config.incompatibleConsumer === 'refuse') throw new ConsumerBindingError(text);
  logger.warn(text);
}

/** Heartbeat period for a live consumer: half its AckWait (or its first BackOff, which replaces AckWait). */
export function heartbeatIntervalMs(info: ConsumerInfo): number {
  const ns = info.config.backoff?.[0] ?? info.config.ack_wait ?? nanos(30_000);
  return Math.max(250, Math.floor(ns / 1_000_000 / 2));
}

/**
 * {@link bindConsumer}, retried with backoff while NATS or the `messages` stream is not there yet
 * (or the consumer is unusable, more slowly). Resolves `undefined` only when `signal` aborts.
 */
export async function bindWithRetry(
  jsm: JetStreamManager,
  config: ConveyorConfig,
  resources: string[],
  logger: LoggerService,
  signal: AbortSignal,
  options: BindOptions = {},
): Promise<ConsumerInfo | undefined> {
  for (let attempt = 1; !signal.aborted; attempt++) {
    try {
      return await bindConsumer(jsm, config, resources, logger, options);
    } catch (err) {
      const retryable = !(err instanceof ConsumerBindingError) || err.retryable;
      const text = `cannot bind consumer "${config.driverName}" (attempt ${attempt}): ${(err as Error).message}`;
      if (retryable) logger.warn(text);
      else logger.error(text);
      await sleep(backoffDelay(attempt, 500, retryable ? 10_000 : 30_000), signal);
    }
  }
  return undefined;
}

/** What is missing after a pull failed: the consumer, the whole stream, or nothing (a transient error). */
export async function missingResource(
  jsm: JetStreamManager,
  name: string,
): Promise<'consumer' | 'stream' | undefined> {
  try {
    await jsm.consumers.info(MESSAGES_STREAM, name);
    return undefined;
  } catch (err) {
    const code = apiErrorCode(err);
    return code === CONSUMER_NOT_FOUND ? 'consumer' : code === STREAM_NOT_FOUND ? 'stream' : undefined;
  }
}

/**
 * Where a re-created consumer starts: after the last ack floor we saw, so it neither replays the
 * stream's history (other drivers' interest keeps old messages) nor skips what was unacked. When
 * the stream itself was re-created, sequences restarted and the old floor means nothing.
 */
export async function resumePoint(
  jsm: JetStreamManager,
  lastSeen: ConsumerInfo | undefined,
): Promise<number | undefined> {
  const floor = lastSeen?.ack_floor.stream_seq ?? 0;
  if (floor === 0) return undefined;
  const stream = await jsm.streams.info(MESSAGES_STREAM);
  // A consumer cannot be older than its stream: a younger stream is a new one.
  const streamIsNewer = Date.parse(stream.created) > Date.parse(lastSeen!.created);
  return streamIsNewer || floor > stream.state.last_seq ? undefined : floor;
}

/**
 * Deletes a retired driver's durable consumer. While it exists, interest retention keeps every
 * event that matches its filters in `messages` forever (nobody will ack them).
 * @returns whether there was a consumer to delete.
 */
export async function deleteDriverConsumer(jsm: JetStreamManager, driverName: string): Promise<boolean> {
  let created: string | undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      if (attempt > 1) {
        // A failed attempt may still have deleted it, and a running replica re-created it since:
        // that one is not ours to delete (stop the driver before retiring its consumer).
        const now = (await jsm.consumers.info(MESSAGES_STREAM, driverName)).created;
        if (created !== undefined && now !== created) return true;
      }
      created ??= (await jsm.consumers.info(MESSAGES_STREAM, driverName)).created;
      return await jsm.consumers.delete(MESSAGES_STREAM, driverName);
    } catch (err) {
      if (apiErrorCode(err) === CONSUMER_NOT_FOUND) return attempt > 1 || created !== undefined;
      // nats-server can fail a delete racing with a running replica's writes to the consumer's
      // store ("unlinkat …: directory not empty"); it succeeds when tried again.
      if (attempt >= 5) throw err;
      await sleep(backoffDelay(attempt, 100, 1000));
    }
  }
}
