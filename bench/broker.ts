/**
 * The orchestrator's side of the broker: one nats-server for the whole bench, streams re-created per
 * round, the driver's consumer made before the backlog (interest retention), and the broker's own
 * view of progress, which is what every scenario is timed and verified by.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import {
  AckPolicy,
  DeliverPolicy,
  connect,
  nanos,
  type JetStreamClient,
  type JetStreamManager,
  type NatsConnection,
} from 'nats';
import type { ConveyorLog, PipelineEvent, Resource } from '@conveyor-ci/nestjs';
import { MESSAGES_STREAM, RESULT_SUBJECT } from '@conveyor-ci/nestjs/internal';
import {
  NatsServer,
  createConveyorStreams,
  makeResource,
  natsServerVersion,
  publishDriverMessage,
} from '@conveyor-ci/testing';
import { now } from './child-protocol';
import { LineAuditor, type LineAudit } from './log-lines';

const PIPELINE_ENGINE_STREAM = 'pipeline-engine';
const LOGS_ENGINE_STREAM = 'logs-engine';
const STREAMS = [MESSAGES_STREAM, PIPELINE_ENGINE_STREAM, LOGS_ENGINE_STREAM];
const POLL_MS = 20;
/** Publishes in flight while preloading: enough to keep the server busy, bounded for memory. */
const PRELOAD_WINDOW = 256;
/** Messages per pull while auditing stored log lines. */
const AUDIT_BATCH = 1000;

/** One DriverMessage's inputs, fixed once so every scenario and round gets the same event bytes. */
export interface BenchEvent {
  resource: Resource;
  id: string;
  runId: string;
}

/** The default spec: a realistic size and shape (two shell steps, an env). */
export const BENCH_SPEC = {
  steps: [
    { name: 'build', run: 'make build && echo "built <ok> & done"' },
    { name: 'test', run: 'make test', timeoutSeconds: 600 },
  ],
  env: { CI: 'true' },
};

/** `count` pipeline resources with `spec` (default: two shell steps and an env). */
export function makeBenchEvents(count: number, spec: Record<string, unknown> = BENCH_SPEC): BenchEvent[] {
  return Array.from({ length: count }, (_, i) => ({
    resource: makeResource({
      name: `bench-pipeline-${i}`,
      resource: 'pipeline',
      pipeline: 'bench',
      spec,
    }),
    id: randomBytes(12).toString('hex'),
    runId: randomUUID(),
  }));
}

/** What the broker says about a finished round. */
export interface BrokerTally {
  /** Results stored in `pipeline-engine` (nothing consumes it, so this counts every stored result). */
  results: number;
  /** `delivered.consumer_seq`: deliveries made, so anything above the message count is a redelivery. */
  deliveries: number;
  redelivered: number;
  /** Stored in `logs-engine`: the handlers log nothing, so anything here is the framework's own. */
  logLines: number;
}

export class BenchBroker {
  private constructor(
    readonly server: NatsServer,
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly js: JetStreamClient,
  ) {}

  static async start(): Promise<BenchBroker> {
    const server = await NatsServer.start();
    try {
      const nc = await connect({ servers: server.url });
      return new BenchBroker(server, nc, await nc.jetstreamManager(), nc.jetstream());
    } catch (err) {
      await server.stop();
      throw err;
    }
  }

  get url(): string {
    return this.server.url;
  }

  get serverVersion(): string {
    return natsServerVersion(this.server.binary) ?? 'unknown';
  }

  /** Fresh streams as the Conveyor server creates them: no backlog, results or consumers of earlier rounds. */
  async reset(): Promise<void> {
    const existing = new Set<string>();
    for await (const name of this.jsm.streams.names()) existing.add(name);
    for (const name of STREAMS) if (existing.has(name)) await this.jsm.streams.delete(name);
    await createConveyorStreams(this.jsm);
  }

  /** The durable consumer exactly as the runtime creates it, so the framework binds without changing it. */
  async createDriverConsumer(driver: string): Promise<void> {
    await this.jsm.consumers.add(MESSAGES_STREAM, {
      durable_name: driver,
      name: driver,
      filter_subjects: ['resources.pipeline', `drivers.${driver}.resources.pipeline`],
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      max_ack_pending: 1000,
      ack_wait: nanos(30_000),
    });
  }

  /** Publishes one event as a pipeline step for `driver`; returns its stream sequence. */
  async publish(driver: string, event: BenchEvent): Promise<number> {
    return (await publishDriverMessage(this.js, { ...event, driver })).seq;
  }

  /** Publishes `events` for `driver`, a window at a time; returns the last stream sequence. */
  async publishAll(driver: string, events: BenchEvent[], timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let lastSeq = 0;
    for (let start = 0; start < events.length; start += PRELOAD_WINDOW) {
      if (Date.now() > deadline)
        throw new Error(`publishing ${events.length} messages took over ${timeoutMs} ms`);
      const seqs = await Promise.all(
        events.slice(start, start + PRELOAD_WINDOW).map((event) => this.publish(driver, event)),
      );
      lastSeq = Math.max(lastSeq, ...seqs);
    }
    return lastSeq;
  }

  /** Publishes the backlog (no driver running yet); returns the last stream sequence. */
  async preload(driver: string, events: BenchEvent[], timeoutMs: number): Promise<number> {
    const lastSeq = await this.publishAll(driver, events, timeoutMs);
    const stored = (await this.jsm.streams.info(MESSAGES_STREAM)).state.messages;
    if (stored !== events.length) {
      throw new Error(`preloaded ${events.length} messages but "${MESSAGES_STREAM}" holds ${stored}`);
    }
    return lastSeq;
  }

  /**
   * Polls the consumer until the broker reports every message acked, and returns when it saw that
   * (resolution: one poll interval plus a round trip). Throws on `timeoutMs`, on no progress for
   * `stallMs`, or as soon as `failure()` reports that the driver died.
   */
  async waitAllAcked(
    driver: string,
    lastSeq: number,
    limits: { timeoutMs: number; stallMs: number; failure: () => Error | undefined },
  ): Promise<number> {
    const started = Date.now();
    let floor = -1;
    let progressAt = started;
    for (;;) {
      const failed = limits.failure();
      if (failed) throw failed;
      const info = await this.jsm.consumers.info(MESSAGES_STREAM, driver);
      const at = now();
      if (info.num_pending === 0 && info.num_ack_pending === 0 && info.ack_floor.stream_seq >= lastSeq)
        return at;
      if (info.ack_floor.stream_seq !== floor) {
        floor = info.ack_floor.stream_seq;
        progressAt = Date.now();
      }
      const state =
        `ack floor ${floor}/${lastSeq}, ${info.num_pending} pending, ${info.num_ack_pending} unacked, ` +
        `${info.num_redelivered} redelivered`;
      if (Date.now() - started > limits.timeoutMs) {
        throw new Error(`consumer "${driver}" not settled after ${limits.timeoutMs} ms (${state})`);
      }
      if (Date.now() - progressAt > limits.stallMs) {
        throw new Error(`consumer "${driver}" made no progress for ${limits.stallMs} ms (${state})`);
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  async tally(driver: string): Promise<BrokerTally> {
    const info = await this.jsm.consumers.info(MESSAGES_STREAM, driver);
    return {
      results: (await this.jsm.streams.info(PIPELINE_ENGINE_STREAM)).state.messages,
      deliveries: info.delivered.consumer_seq,
      redelivered: info.num_redelivered,
      logLines: (await this.jsm.streams.info(LOGS_ENGINE_STREAM)).state.messages,
    };
  }

  /** Results stored in `pipeline-engine` (nothing consumes it either). */
  async storedResults(): Promise<number> {
    return (await this.jsm.streams.info(PIPELINE_ENGINE_STREAM)).state.messages;
  }

  /** Lines stored in `logs-engine`: nothing consumes that stream in the bench, so every stored line. */
  async storedLogLines(): Promise<number> {
    return (await this.jsm.streams.info(LOGS_ENGINE_STREAM)).state.messages;
  }

  /**
   * Reads every message of `logs-engine` once and audits its `message` against the `lines` logged
   * for `runId` (a line of another run counts as an "other"). For after a round: a work-queue stream
   * admits only acking consumers, and each ack removes the line it read.
   */
  async auditLogLines(runId: string, lines: number, timeoutMs: number): Promise<LineAudit> {
    const total = await this.storedLogLines();
    const name = 'bench-log-audit';
    await this.jsm.consumers.add(LOGS_ENGINE_STREAM, {
      name,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      max_ack_pending: AUDIT_BATCH * 10,
      ack_wait: nanos(timeoutMs),
    });
    const auditor = new LineAuditor(lines);
    const decoder = new TextDecoder();
    const deadline = Date.now() + timeoutMs;
    try {
      const consumer = await this.js.consumers.get(LOGS_ENGINE_STREAM, name);
      for (let read = 0; read < total;) {
        if (Date.now() > deadline)
          throw new Error(`auditing "${LOGS_ENGINE_STREAM}": read ${read} of ${total} in ${timeoutMs} ms`);
        for await (const msg of await consumer.fetch({ max_messages: AUDIT_BATCH, expires: 2_000 })) {
          read += 1;
          const log = JSON.parse(decoder.decode(msg.data)) as ConveyorLog;
          auditor.add(log.runid === runId ? log.message : `(run ${log.runid}) ${log.message}`);
          msg.ack();
        }
      }
    } finally {
      await this.jsm.consumers.delete(LOGS_ENGINE_STREAM, name).catch(() => undefined);
    }
    return auditor.result();
  }

  /**
   * Stamps the arrival of `runId`'s result on a core subscription of the result subject. The server
   * hands a JetStream publish to its stream and to core subscribers in the same pass, so the stamp is
   * when the result is stored (to well under a millisecond) without polling. Subscribed (and flushed
   * to the server) before it returns, so a result published right after cannot be missed.
   */
  async watchResult(runId: string): Promise<{ arrived: Promise<number>; close: () => void }> {
    const sub = this.nc.subscribe(RESULT_SUBJECT);
    const decoder = new TextDecoder();
    const arrived = (async () => {
      for await (const msg of sub) {
        const at = now();
        if ((JSON.parse(decoder.decode(msg.data)) as PipelineEvent).run_id === runId) return at;
      }
      throw new Error(`the subscription to ${RESULT_SUBJECT} closed before run ${runId}'s result came`);
    })();
    // Read through the returned promise; unsubscribing early must not surface as an unhandled rejection.
    arrived.catch(() => undefined);
    await this.nc.flush();
    return { arrived, close: () => sub.unsubscribe() };
  }

  async stop(): Promise<void> {
    await this.nc.close().catch(() => undefined);
    await this.server.stop();
  }
}
