import { JetStreamClient, JetStreamManager, NatsConnection, connect } from 'nats';
import { LOGS_ENGINE_STREAM, MESSAGES_STREAM } from '@conveyor-ci/nestjs/internal';
import { NatsCluster, NatsServer, createConveyorStreams, waitForConsumer } from '@conveyor-ci/testing';
import { EventFeeder } from './event-feeder';
import { addDeadLetterStream } from './stored-records';
import { WireResults } from './wire-results';

/**
 * What one fault case runs on: a single file-store nats-server or a 3-node cluster (R3 streams),
 * Conveyor's streams plus a dead-letter stream, a management connection that knows every node, a
 * result watcher on every node and an event feeder.
 */
export class FaultEnv {
  private constructor(
    readonly servers: string[],
    readonly nc: NatsConnection,
    readonly jsm: JetStreamManager,
    readonly js: JetStreamClient,
    readonly wire: WireResults,
    readonly feeder: EventFeeder,
    readonly single?: NatsServer,
    readonly cluster?: NatsCluster,
  ) {}

  /** A single nats-server (file store); with `streams: false` Conveyor's streams are left to {@link createStreams}. */
  static async single(options: { maxPayload?: number; streams?: boolean } = {}): Promise<FaultEnv> {
    const server = await NatsServer.start(options);
    return FaultEnv.open([server.url], 1, server, undefined, options.streams ?? true);
  }

  /** Conveyor's streams and the dead-letter stream, as the server creates them at startup. */
  async createStreams(replicas = this.cluster ? 3 : 1): Promise<void> {
    await createConveyorStreams(this.jsm, { replicas });
    await addDeadLetterStream(this.jsm, replicas);
  }

  /** A 3-node cluster with every stream replicated three times, each stream's leader elected and current. */
  static async cluster(): Promise<FaultEnv> {
    const cluster = await NatsCluster.start();
    const env = await FaultEnv.open(cluster.urls, 3, undefined, cluster);
    for (const stream of [MESSAGES_STREAM, 'pipeline-engine', LOGS_ENGINE_STREAM])
      await cluster.waitForStreamLeader(env.jsm, stream);
    return env;
  }

  private static async open(
    servers: string[],
    replicas: number,
    single?: NatsServer,
    cluster?: NatsCluster,
    streams = true,
  ): Promise<FaultEnv> {
    const nc = await connect({
      servers,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 100,
      name: 'fault-suite',
    });
    const jsm = await nc.jetstreamManager();
    const js = nc.jetstream();
    const wire = await WireResults.open(servers);
    const env = new FaultEnv(servers, nc, jsm, js, wire, new EventFeeder(js), single, cluster);
    if (streams) await env.createStreams(replicas);
    return env;
  }

  /** Waits for a driver's durable consumer: `messages` keeps an event only if a consumer wants it. */
  waitForConsumer(driver: string): Promise<void> {
    return waitForConsumer(this.jsm, driver, { timeoutMs: 30_000 });
  }

  async stop(): Promise<void> {
    await this.wire.close().catch(() => undefined);
    await this.nc.close().catch(() => undefined);
    await this.single?.stop();
    await this.cluster?.stop();
  }
}
