import type { LoggerService } from '@nestjs/common';
import type { MessageHandler } from '@nestjs/microservices';
import type { JetStreamClient, JsMsg } from 'nats';
import { isObservable, lastValueFrom } from 'rxjs';
import { createProcessRunLogger } from '../logger/run-logger';
import type { ConveyorConfig } from '../module/conveyor.options';
import {
  DecodedMessage,
  MalformedMessageError,
  MessageRoute,
  decodeDriverMessage,
  encodeWire,
  parseMessageSubject,
  toPipelineEvent,
} from '../protocol';
import { ReconcileContext, thrownBy } from '../reconcile/reconcile-context';
import type { ReconcileHandlerMeta } from '../reconcile/reconcile.decorator';
import type { ReconcileHandlerRegistry } from '../reconcile/reconcile-handler.registry';
import { applyVerb, publishResult } from '../settlement/settlement.executor';
import { ReconcileOutcome, Settlement, decideSettlement } from '../settlement/settlement.policy';

/** Delay before a message nobody here handles is offered again (rolling deploys: another replica may). */
const UNROUTED_NAK_DELAY_MS = 5000;

export interface DispatcherDeps {
  config: ConveyorConfig;
  js: JetStreamClient;
  registry: ReconcileHandlerRegistry<MessageHandler>;
  logger: LoggerService;
  heartbeatMs: number;
  /** Runs a handler call inside Nest's processing hooks (OpenTelemetry instrumentations use them). */
  withProcessingHooks: (
    ctx: ReconcileContext,
    invoke: () => Promise<ReconcileOutcome>,
  ) => Promise<ReconcileOutcome>;
}

interface ActiveRun {
  msg: JsMsg;
  /** Given to the handler as `ctx.signal`. */
  handlerAbort: AbortController;
  /** Stops result-publish retries: only at the shutdown deadline. */
  deadline: AbortController;
  /** Set once a final verb was sent (or sent on the run's behalf at shutdown). */
  settled: boolean;
  done: Promise<void>;
}

/** The path of one message: decode once, route, invoke through Nest, settle. */
export class MessageDispatcher {
  private readonly runs = new Set<ActiveRun>();

  constructor(private readonly deps: DispatcherDeps) {}

  get inFlight(): number {
    return this.runs.size;
  }

  async dispatch(msg: JsMsg): Promise<void> {
    const { logger, registry } = this.deps;
    let decoded: DecodedMessage;
    try {
      decoded = decodeDriverMessage(msg.data);
    } catch (err) {
      if (!(err instanceof MalformedMessageError)) throw err;
      logger.error(
        `poison message on ${msg.subject} (stream seq ${msg.seq}, delivery ${msg.info.redeliveryCount}): ${err.reason}; terminating it`,
      );
      return applyVerb(msg, { action: 'term', reason: `undecodable: ${err.reason}` }, logger);
    }
    const route = parseMessageSubject(msg.subject);
    const lookup = route
      ? registry.lookup(route.resource, decoded.message.event)
      : ({ kind: 'none' } as const);
    if (lookup.kind === 'none' || !route) {
      // Never ack or term: during a rolling deploy another replica may handle this subject.
      logger.warn(
        `no @Reconcile handler for ${msg.subject} (event "${decoded.message.event}"): offering it again later`,
      );
      return applyVerb(msg, { action: 'nak', delayMs: UNROUTED_NAK_DELAY_MS, reason: 'no handler' }, logger);
    }
    if (lookup.kind === 'event-filtered') {
      if (route.kind === 'pipeline-step') {
        logger.warn(
          `${lookup.meta.handler} skips event "${decoded.message.event}" of a pipeline step (run ${decoded.message.run_id}): ` +
            'the pipeline will not advance past this step',
        );
      }
      return applyVerb(msg, { action: 'ack', reason: 'event filtered out' }, logger);
    }
    return this.run(msg, decoded, route, lookup.meta, lookup.handler);
  }

  private async run(
    msg: JsMsg,
    decoded: DecodedMessage,
    route: MessageRoute,
    meta: ReconcileHandlerMeta,
    handler: MessageHandler,
  ): Promise<void> {
    const { config } = this.deps;
    let finish!: () => void;
    const run: ActiveRun = {
      msg,
      handlerAbort: new AbortController(),
      deadline: new AbortController(),
      settled: false,
      done: new Promise<void>((resolve) => (finish = resolve)),
    };
    this.runs.add(run);
    const heartbeat =
      config.ackMode === 'afterResult'
        ? setInterval(() => run.settled || msg.working(), this.deps.heartbeatMs)
        : undefined;
    // The ceiling aborts through ctx.signal; a handler that ignores it keeps its slot until it settles.
    let timedOutAfterMs: number | undefined;
    const timeout =
      config.reconcileTimeoutMs > 0
        ? setTimeout(() => {
            timedOutAfterMs = config.reconcileTimeoutMs;
            this.deps.logger.warn(
              `run ${decoded.message.run_id} exceeded ${timedOutAfterMs} ms: aborting it`,
            );
            run.handlerAbort.abort(new Error(`reconcile timed out after ${timedOutAfterMs} ms`));
          }, config.reconcileTimeoutMs)
        : undefined;
    try {
      if (config.ackMode === 'onReceive') {
        // Go parity (at-most-once): a crash from here on loses the event.
        msg.ack();
        run.settled = true;
      }
      const { message, resource: original, payload } = decoded;
      const resource = JSON.parse(payload); // the handler gets its own copy; the result carries the original
      const ctx = new ReconcileContext({
        event: message.event,
        runId: message.run_id,
        messageId: message.id,
        subject: msg.subject,
        resourceType: route.resource,
        deliveryCount: msg.info.redeliveryCount,
        streamSequence: msg.seq,
        driverName: config.driverName,
        payload,
        resource,
        signal: run.handlerAbort.signal,
        logger: createProcessRunLogger(config.driverName, {
          run_id: message.run_id,
          event: message.event,
          resource: original.name,
          resource_type: route.resource,
        }),
      });
      const outcome = await this.deps.withProcessingHooks(ctx, () =>
        invoke(handler, resource, ctx, meta.handler),
      );
      clearTimeout(timeout);
      const settlement = decideSettlement(outcome, {
        timedOutAfterMs,
        shutdownAborted: run.deadline.signal.aborted,
      });
      await this.settle(run, decoded, settlement);
    } finally {
      clearTimeout(timeout);
      clearInterval(heartbeat);
      this.runs.delete(run);
      finish();
    }
  }

  private async settle(run: ActiveRun, decoded: DecodedMessage, settlement: Settlement): Promise<void> {
    const { config, js, logger } = this.deps;
    const { message } = decoded;
    if (settlement.result) {
      const bytes = encodeWire(
        toPipelineEvent(message.run_id, decoded.resource, settlement.result, config.driverName),
      );
      const msgId = `${message.run_id}:${config.driverName}:${message.id}`;
      const { result } = settlement;
      const stored = await publishResult(js, bytes, msgId, logger, run.deadline.signal);
      if (stored) {
        logger.log(`run ${message.run_id} ${result.success ? 'succeeded' : `failed: ${result.message}`}`);
      } else {
        logger.warn(`run ${message.run_id}: result not published before shutdown; nak'd for another replica`);
        settlement = { action: 'nak', reason: 'result not published before shutdown' };
      }
    }
    if (run.settled) return;
    run.settled = true;
    await applyVerb(run.msg, settlement, logger);
  }

  /**
   * Waits up to `timeoutMs` for in-flight runs. Past it, aborts them and naks their messages so
   * another replica reruns them now rather than after AckWait.
   */
  async drain(timeoutMs: number): Promise<void> {
    const all = () => Promise.all([...this.runs].map((r) => r.done));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      all().then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (!timedOut) return;
    for (const run of this.runs) {
      run.deadline.abort();
      run.handlerAbort.abort(new Error('shutdown deadline reached'));
      if (!run.settled) {
        run.settled = true;
        this.deps.logger.warn(
          `run on stream seq ${run.msg.seq} still running at the shutdown deadline: nak'd for another replica`,
        );
        run.msg.nak();
      }
    }
  }
}

/** Calls the Nest-wrapped handler and collapses Promise/Observable results into one outcome. */
async function invoke(
  handler: MessageHandler,
  data: unknown,
  ctx: ReconcileContext,
  name: string,
): Promise<ReconcileOutcome> {
  try {
    const returned = await handler(data, ctx);
    const value = isObservable(returned)
      ? await lastValueFrom(returned, { defaultValue: undefined })
      : returned;
    const recorded = thrownBy(ctx);
    return recorded
      ? { kind: 'threw', error: recorded.error, handler: name }
      : { kind: 'returned', value, handler: name };
  } catch (error) {
    // Prefer the original value recorded by the outcome interceptor over what Nest's exception
    // layer (or a throwing HTTP-only filter) turned it into.
    return { kind: 'threw', error: thrownBy(ctx)?.error ?? error, handler: name };
  }
}
