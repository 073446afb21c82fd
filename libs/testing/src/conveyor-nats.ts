import { randomBytes, randomUUID } from 'node:crypto';
import {
  JetStreamClient,
  JetStreamManager,
  NatsConnection,
  RetentionPolicy,
  Subscription,
  ConnectionOptions,
  connect,
} from 'nats';
import { NatsServer, NatsServerOptions } from './nats-server.harness';
import {
  LOGS_ENGINE_STREAM,
  MESSAGES_STREAM,
  PIPELINE_ENGINE_STREAM,
  RESULT_SUBJECT,
  encodeGoJson,
  pipelineStepSubject,
  resourceSubject,
  type DriverMessage,
  type PipelineEvent,
  type Resource,
} from '@conveyor-ci/nestjs/internal';

/**
 * Creates the three streams exactly as the Conveyor server does at startup (`InitiateStreams`,
 * contract §5.1): only name, subjects and retention are set; everything else is the server default.
 * On a cluster (`NatsCluster`) `replicas: 3` makes each stream a Raft group across three nodes.
 */
export async function createConveyorStreams(
  jsm: JetStreamManager,
  options: { replicas?: number } = {},
): Promise<void> {
  const streams = [
    {
      name: MESSAGES_STREAM,
      subjects: ['resources.>', 'events.>', 'drivers.>'],
      retention: RetentionPolicy.Interest,
    },
    { name: PIPELINE_ENGINE_STREAM, subjects: ['pipelines.>'], retention: RetentionPolicy.Workqueue },
    { name: LOGS_ENGINE_STREAM, subjects: ['logs.>'], retention: RetentionPolicy.Workqueue },
  ];
  for (const stream of streams) await jsm.streams.add({ ...stream, num_replicas: options.replicas ?? 1 });
}

/**
 * A resource as the server stores and sends it: a new id, `metadata.version` "1", keys in Go struct
 * order (`pipeline` omitted when empty, as `omitempty` does).
 */
export function makeResource<Spec>(fields: {
  name: string;
  resource: string;
  spec: Spec;
  pipeline?: string;
  metadata?: Record<string, string>;
}): Resource<Spec> {
  return {
    id: randomUUID(),
    name: fields.name,
    ...(fields.pipeline ? { pipeline: fields.pipeline } : {}),
    resource: fields.resource,
    metadata: fields.metadata ?? { version: '1' },
    spec: fields.spec,
  };
}

export interface PublishedEvent {
  subject: string;
  message: DriverMessage;
  /** Sequence in the `messages` stream. */
  seq: number;
}

/**
 * Publishes a DriverMessage the way the server does (contract §6): payload double-encoded as a
 * Go-escaped JSON string, a 24-hex message id, a UUID v4 run id, no headers. With `driver` it is a
 * pipeline step (`drivers.{driver}.resources.{r}`), else a direct resource event (`resources.{r}`).
 *
 * `messages` keeps interest retention: publish only after the driver's consumer exists
 * ({@link waitForConsumer}), or the event is dropped like on a real server.
 */
export async function publishDriverMessage(
  js: JetStreamClient,
  event: { resource: Resource; driver?: string; event?: string; runId?: string; id?: string },
): Promise<PublishedEvent> {
  const message: DriverMessage = {
    event: event.event ?? 'create',
    payload: encodeGoJson(event.resource),
    id: event.id ?? randomBytes(12).toString('hex'),
    run_id: event.runId ?? randomUUID(),
  };
  const subject = event.driver
    ? pipelineStepSubject(event.driver, event.resource.resource)
    : resourceSubject(event.resource.resource);
  const ack = await js.publish(subject, encodeGoJson(message));
  return { subject, message, seq: ack.seq };
}

/** Waits until consumer `name` exists on `messages` (and, if given, has these filters). */
export async function waitForConsumer(
  jsm: JetStreamManager,
  name: string,
  options: { timeoutMs?: number; filterSubjects?: string[] } = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 15_000);
  const wanted = options.filterSubjects ? [...options.filterSubjects].sort().join() : undefined;
  for (;;) {
    try {
      const info = await jsm.consumers.info(MESSAGES_STREAM, name);
      const filters = [...(info.config.filter_subjects ?? [])].sort().join();
      if (wanted === undefined || filters === wanted) return;
    } catch {
      /* not there yet */
    }
    if (Date.now() > deadline)
      throw new Error(`consumer "${name}" did not appear on "${MESSAGES_STREAM}" in time`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until consumer `name` has nothing pending and nothing unacknowledged; returns its last backlog. */
export async function waitForSettled(
  jsm: JetStreamManager,
  name: string,
  timeoutMs = 10_000,
): Promise<{ pending: number; ackPending: number }> {
  const deadline = Date.now() + timeoutMs;
  let backlog = await consumerBacklog(jsm, name);
  while ((backlog.pending !== 0 || backlog.ackPending !== 0) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    backlog = await consumerBacklog(jsm, name);
  }
  return backlog;
}

/** Pending and ack-pending counts of a consumer: both 0 means every event was settled. */
export async function consumerBacklog(
  jsm: JetStreamManager,
  name: string,
): Promise<{ pending: number; ackPending: number }> {
  const info = await jsm.consumers.info(MESSAGES_STREAM, name);
  return { pending: info.num_pending, ackPending: info.num_ack_pending };
}

/**
 * Collects results published to `pipelines.driver.result` with a core subscription (drivers and
 * tests must never add consumers to the server's work-queue streams: contract §5.1).
 */
export class ResultCollector {
  readonly results: { event: PipelineEvent; raw: string; msgId?: string }[] = [];
  private readonly sub: Subscription;
  private waiters: (() => void)[] = [];

  constructor(nc: NatsConnection) {
    this.sub = nc.subscribe(RESULT_SUBJECT, {
      callback: (_err, msg) => {
        const raw = new TextDecoder().decode(msg.data);
        this.results.push({ event: JSON.parse(raw), raw, msgId: msg.headers?.get('Nats-Msg-Id') });
        this.waiters.splice(0).forEach((w) => w());
      },
    });
  }

  /** Resolves with the first `count` results, or rejects after `timeoutMs`. */
  async waitFor(count: number, timeoutMs = 20_000): Promise<PipelineEvent[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.results.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`expected ${count} result(s), got ${this.results.length}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.results.slice(0, count).map((r) => r.event);
  }

  /** Waits for the first result of run `runId`. */
  async waitForRun(runId: string, timeoutMs = 20_000): Promise<PipelineEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const [found] = this.forRun(runId);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no result for run ${runId} in ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Results of one run. */
  forRun(runId: string): PipelineEvent[] {
    return this.results.filter((r) => r.event.run_id === runId).map((r) => r.event);
  }

  close(): void {
    this.sub.unsubscribe();
  }
}

/**
 * A real nats-server with Conveyor's streams, a client connection and a result collector: what a
 * test of a driver needs in place of a Conveyor server's NATS.
 */
export class ConveyorTestEnv {
  private constructor(
    readonly server: NatsServer,
    readonly nc: NatsConnection,
    readonly jsm: JetStreamManager,
    readonly js: JetStreamClient,
    readonly results: ResultCollector,
  ) {}

  /** `connection`: what the env's own client needs on a secured server (credentials, TLS). */
  static async start(
    options: NatsServerOptions = {},
    connection: Partial<ConnectionOptions> = {},
  ): Promise<ConveyorTestEnv> {
    const server = await NatsServer.start(options);
    const nc = await connect({
      servers: server.url,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 100,
      ...connection,
    });
    const jsm = await nc.jetstreamManager();
    await createConveyorStreams(jsm);
    return new ConveyorTestEnv(server, nc, jsm, nc.jetstream(), new ResultCollector(nc));
  }

  get url(): string {
    return this.server.url;
  }

  async stop(): Promise<void> {
    this.results.close();
    await this.nc.close();
    await this.server.stop();
  }
}
