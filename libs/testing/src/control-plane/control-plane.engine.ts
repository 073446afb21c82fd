import { randomBytes, randomUUID } from 'node:crypto';
import { AckPolicy, ConsumerMessages, JetStreamClient, JetStreamManager, JsMsg, NatsConnection } from 'nats';
import {
  DriverMessage,
  LOGS_ENGINE_STREAM,
  PIPELINE_ENGINE_STREAM,
  PipelineEvent,
  Resource,
  encodeGoJson,
  pipelineStepSubject,
  resourceSubject,
} from '@conveyor-ci/nestjs/internal';
import type { ControlPlaneStore } from './control-plane.store';

/** Subject of the API's pipeline start event (contract §5.2). */
const PIPELINE_INIT_SUBJECT = 'pipelines.pipeline.init';

/**
 * The server's engines (contract §6): the pipeline engine turns init events and driver results into
 * the next step's DriverMessage; the logs engine stores `logs.>` lines. Both own the work-queue
 * consumers the server owns, named as the server names them.
 */
export class ControlPlaneEngine {
  private readonly js: JetStreamClient;
  private readonly loops: ConsumerMessages[] = [];

  constructor(
    private readonly nc: NatsConnection,
    private readonly store: ControlPlaneStore,
    private readonly onEvent: (line: string) => void = () => undefined,
  ) {
    this.js = nc.jetstream();
  }

  async start(jsm: JetStreamManager): Promise<void> {
    for (const [stream, filter] of [
      [PIPELINE_ENGINE_STREAM, 'pipelines.>'],
      [LOGS_ENGINE_STREAM, 'logs.>'],
    ] as const) {
      await jsm.consumers.add(stream, {
        durable_name: stream,
        filter_subject: filter,
        ack_policy: AckPolicy.Explicit,
      });
      const messages = await (await this.js.consumers.get(stream, stream)).consume();
      this.loops.push(messages);
      const handle =
        stream === PIPELINE_ENGINE_STREAM
          ? (m: JsMsg) => this.onPipelineEvent(m)
          : (m: JsMsg) => this.onLog(m);
      void (async () => {
        for await (const m of messages) await handle(m);
      })();
    }
  }

  async stop(): Promise<void> {
    for (const loop of this.loops.splice(0)) await loop.close().catch(() => undefined);
  }

  /**
   * `PublishResourceEvent` (contract §6): a resource without a pipeline goes to every driver of its
   * type on `resources.{type}`; one with a pipeline starts the pipeline engine. The event is always
   * "create" at 0.6.x. Returns the new run id.
   */
  async publishResourceEvent(resource: Resource<unknown>): Promise<string> {
    const runId = randomUUID();
    if (!resource.pipeline) {
      await this.js.publish(
        resourceSubject(resource.resource),
        encodeGoJson(this.driverMessage('create', resource, runId)),
      );
    } else {
      const init: PipelineEvent = {
        event: 'create',
        run_id: runId,
        resource,
        driverresult: { success: false, message: '', data: null, driver: '' },
      };
      await this.js.publish(PIPELINE_INIT_SUBJECT, encodeGoJson(init));
    }
    return runId;
  }

  private driverMessage(event: string, resource: Resource<unknown>, runId: string): DriverMessage {
    // The payload is the resource as a JSON *string* (double-encoded), like the server sends it (§3.4).
    return { event, payload: encodeGoJson(resource), id: randomBytes(12).toString('hex'), run_id: runId };
  }

  private async sendStep(
    driver: string,
    event: string,
    resource: Resource<unknown>,
    runId: string,
  ): Promise<void> {
    await this.js.publish(
      pipelineStepSubject(driver, resource.resource),
      encodeGoJson(this.driverMessage(event, resource, runId)),
    );
    this.onEvent(`run ${runId}: ${resource.resource} "${resource.name}" -> ${driver} (${event})`);
  }

  private async onPipelineEvent(msg: JsMsg): Promise<void> {
    msg.ack(); // the server acks before processing (contract §6.2)
    let event: PipelineEvent;
    try {
      event = JSON.parse(new TextDecoder().decode(msg.data)) as PipelineEvent;
    } catch {
      return;
    }
    const resource = event.resource;
    // Name, type and pipeline come from the event's resource, as the real engine reads them (§6.2).
    if (!resource?.pipeline) return;
    const pipeline = this.store.pipelines.get(resource.pipeline);
    if (!pipeline || pipeline.steps.length === 0) return;
    if (msg.subject === PIPELINE_INIT_SUBJECT) {
      await this.sendStep(pipeline.steps[0].driver, event.event, resource, event.run_id);
      return;
    }
    const result = event.driverresult;
    const updated = this.store.recordDriverResult(resource.resource, resource.name, result);
    this.onEvent(
      `run ${event.run_id}: ${result.driver} ${result.success ? 'succeeded' : 'failed'}${result.message ? `: ${result.message}` : ''}`,
    );
    // The server picks the *first* step of this driver (a driver used twice misroutes: contract G17).
    const index = pipeline.steps.findIndex((step) => step.driver === result.driver);
    // On failure the server does nothing (`// TODO: Handle failure case`): the run stops here.
    if (!updated || !result.success || index < 0) return;
    const next = pipeline.steps[index + 1];
    if (next) await this.sendStep(next.driver, 'process', updated, event.run_id);
    else this.onEvent(`run ${event.run_id}: pipeline "${pipeline.name}" completed`);
  }

  private async onLog(msg: JsMsg): Promise<void> {
    try {
      this.store.addLog(JSON.parse(new TextDecoder().decode(msg.data)));
    } catch {
      /* the server drops lines it cannot parse */
    }
    msg.ack();
  }
}
