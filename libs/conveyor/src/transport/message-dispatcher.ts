import type { LoggerService } from '@nestjs/common';
import type { MessageHandler } from '@nestjs/microservices';
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { JetStreamClient, JsMsg, NatsConnection } from 'nats';
import type { LogShipper } from '../logger/log-shipper';
import { RunBinding, createRunBinding, runScope } from '../logger/run-scope';
import type { ConveyorConfig } from '../module/conveyor.options';
import {
  DecodedMessage,
  MESSAGES_STREAM,
  MalformedMessageError,
  MessageRoute,
  Resource,
  decodeDriverMessage,
  encodeWire,
  toPipelineEvent,
} from '../protocol';
import type { ReconcileHandlerMeta } from '../reconcile/reconcile.decorator';
import type { ReconcileHandlerRegistry } from '../reconcile/reconcile-handler.registry';
import {
  ReconcileInvocation,
  createReconcileContext,
  effectiveMaxAttempts,
  runReconcile,
} from '../reconcile/reconcile-runner';
import { recordDeadLetter } from '../settlement/dead-letter';
import { applyVerb, publishResult } from '../settlement/settlement.executor';
import {
  MessageOutcome,
  RunState,
  Settlement,
  SettlementKind,
  decideSettlement,
} from '../settlement/settlement.policy';
import { ConcurrencyGate } from './concurrency-gate';
import type { RunObservers } from './run-events';

/** No-op unless the app registers an OpenTelemetry SDK. */
const tracer = trace.getTracer('@conveyor-ci/nestjs');

/** A run that ignores its abort signal this long after its timeout gets a second, louder warning. */
const OVERDUE_WARNING_MS = 5000;

export interface DispatcherDeps {
  config: ConveyorConfig;
  nc: NatsConnection;
  js: JetStreamClient;
  registry: ReconcileHandlerRegistry<MessageHandler>;
  logger: LoggerService;
  /** The DriverLogger's sinks: a run's lines are flushed before its result. */
  logs: LogShipper;
  observers: RunObservers;
  heartbeatMs: number;
  /** The consumer's `max_deliver` (-1 or 0: unlimited): the server stops redelivering past it. */
  maxDeliver: number;
  /** Runs a handler call inside Nest's processing hooks (OpenTelemetry instrumentations use them). */
  around: ReconcileInvocation['around'];
  /** The stale-event guard, when enabled: an outcome that ends the message before its handler runs. */
  checkStale?: (decoded: DecodedMessage, route: MessageRoute) => Promise<MessageOutcome | undefined>;
}

/** Counters of what happened to messages, by settlement row, plus runs past their timeout. */
export interface DispatchStats {
  settled: Record<SettlementKind, number>;
  inFlight: number;
  /** Runs whose timeout elapsed but whose handler has not let go of its slot yet. */
  overdue: number;
}

/** One message between pull and final verb. */
interface Tracked {
  msg: JsMsg;
  /** Stops result-publish retries: only at the shutdown deadline. */
  deadline: AbortController;
  /** Given to the handler as `ctx.signal`, once it starts. */
  handlerAbort?: AbortController;
  /** Set once a final verb was sent (or sent on the message's behalf at shutdown). */
  settled: boolean;
  /** The shutdown deadline already settled (and counted) it: the run's own outcome is moot. */
  drained?: boolean;
  overdue: boolean;
  done: Promise<void>;
}

/** A routed message about to run its handler. */
interface RunJob {
  t: Tracked;
  decoded: DecodedMessage;
  route: MessageRoute;
  meta: ReconcileHandlerMeta;
  handler: MessageHandler;
  binding: RunBinding;
}

/** What a result is published for: the run, its resource, and the `Nats-Msg-Id` that de-duplicates it. */
interface ResultTarget {
  runId: string;
  resource: Resource;
  msgId: string;
}

const SETTLEMENT_KINDS: SettlementKind[] = [
  'succeeded',
  'failed',
  'retried',
  'gave-up',
  'timed-out',
  'filtered',
  'unrouted',
  'dead-lettered',
  'stale',
  'shutdown',
];

function zeroCounts(): Record<SettlementKind, number> {
  return Object.fromEntries(SETTLEMENT_KINDS.map((k) => [k, 0])) as Record<SettlementKind, number>;
}

/** The path of one message: decode once, route, wait for the handler's slot, invoke through Nest, settle. */
export class MessageDispatcher {
  private readonly tracked = new Set<Tracked>();
  private readonly handlerGates = new Map<string, ConcurrencyGate>();
  private readonly stopping = new AbortController();
  private readonly counts = zeroCounts();

  constructor(private readonly deps: DispatcherDeps) {}

  get inFlight(): number {
    return this.tracked.size;
  }

  static emptyStats(): DispatchStats {
    return { settled: zeroCounts(), inFlight: 0, overdue: 0 };
  }

  get stats(): DispatchStats {
    return {
      settled: { ...this.counts },
      inFlight: this.tracked.size,
      overdue: [...this.tracked].filter((t) => t.overdue).length,
    };
  }

  async dispatch(msg: JsMsg): Promise<void> {
    let finish!: () => void;
    const t: Tracked = {
      msg,
      deadline: new AbortController(),
      settled: false,
      overdue: false,
      done: new Promise<void>((resolve) => (finish = resolve)),
    };
    this.tracked.add(t);
    // Heartbeats cover the whole stay: waiting for a handler slot, the run, the result publish.
    const heartbeat = setInterval(() => t.settled || msg.working(), this.deps.heartbeatMs);
    try {
      await this.process(t);
    } finally {
      clearInterval(heartbeat);
      this.tracked.delete(t);
      finish();
    }
  }

  private state(msg: JsMsg, extra: Partial<RunState> = {}): RunState {
    return {
      deliveryCount: msg.info.redeliveryCount,
      maxAttempts: this.deps.config.maxAttempts,
      retryDelayMs: this.deps.config.retryDelayMs,
      ...extra,
    };
  }

  private async process(t: Tracked): Promise<void> {
    const { msg } = t;
    let decoded: DecodedMessage;
    try {
      decoded = decodeDriverMessage(msg.data);
    } catch (err) {
      if (!(err instanceof MalformedMessageError)) throw err;
      const { reason, runId, resource } = err;
      const target =
        runId && resource
          ? { runId, resource, msgId: `${runId}:${this.deps.config.driverName}:seq${msg.seq}` }
          : undefined;
      await this.settle(t, this.decide({ kind: 'undecodable', reason, runId, resource }, t), target, runId);
      return;
    }
    const { message, resource } = decoded;
    const binding = createRunBinding({
      runId: message.run_id,
      driver: this.deps.config.driverName,
      pipeline: resource.pipeline ?? '',
      event: message.event,
      messageId: message.id,
      resource: resource.name,
      resourceType: resource.resource,
    });
    // The whole dispatch runs in the run's scope, so an injected DriverLogger finds it anywhere.
    await runScope.run(binding, () => this.route(t, decoded, binding));
    binding.resultSent = true;
  }

  private async route(t: Tracked, decoded: DecodedMessage, binding: RunBinding): Promise<void> {
    const { msg } = t;
    const runId = binding.runId;
    const routing = this.deps.registry.route(msg.subject, decoded.message.event);
    if (routing.kind === 'settle') {
      await this.settle(t, this.decide(routing.outcome, t), undefined, runId);
      return;
    }
    const gate = this.gateFor(routing.meta);
    if (gate && !(await gate.take(this.stopping.signal))) {
      await this.settle(t, this.decide({ kind: 'not-started' }, t), undefined, runId);
      return;
    }
    try {
      const stale = await this.deps.checkStale?.(decoded, routing.route);
      if (stale) await this.settle(t, this.decide(stale, t), undefined, runId);
      else
        await this.run({
          t,
          decoded,
          route: routing.route,
          meta: routing.meta,
          handler: routing.handler,
          binding,
        });
    } finally {
      gate?.release();
    }
  }

  private decide(outcome: MessageOutcome, t: Tracked): Settlement {
    return decideSettlement(outcome, this.state(t.msg));
  }

  private gateFor(meta: ReconcileHandlerMeta): ConcurrencyGate | undefined {
    if (meta.concurrency === undefined) return undefined;
    let gate = this.handlerGates.get(meta.handler);
    if (!gate) this.handlerGates.set(meta.handler, (gate = new ConcurrencyGate(meta.concurrency)));
    return gate;
  }

  /** One handler run, in an OpenTelemetry span (a no-op without an SDK), reported to the observers. */
  private async run(job: RunJob): Promise<void> {
    const { t, route, binding } = job;
    const started = Date.now();
    const deliveryCount = t.msg.info.redeliveryCount;
    this.deps.observers.runStarted({ resourceType: route.resource, deliveryCount });
    const attributes = {
      'conveyor.run_id': binding.runId,
      'conveyor.driver': binding.driver,
      'conveyor.resource': binding.resource,
      'conveyor.resource_type': route.resource,
      'conveyor.event': binding.event,
      'conveyor.delivery_count': deliveryCount,
      'messaging.system': 'nats',
      'messaging.destination.name': t.msg.subject,
    };
    await tracer.startActiveSpan(
      `reconcile ${route.resource}`,
      { kind: SpanKind.CONSUMER, attributes },
      async (span) => {
        try {
          const outcome = await this.reconcile(job);
          span.setAttribute('conveyor.outcome', outcome);
          if (outcome !== 'succeeded') span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
          this.deps.observers.runFinished({
            resourceType: route.resource,
            outcome,
            durationMs: Date.now() - started,
          });
        } finally {
          span.end();
        }
      },
    );
  }

  private async reconcile({ t, decoded, route, meta, handler, binding }: RunJob): Promise<SettlementKind> {
    const { config, logger } = this.deps;
    const { msg } = t;
    const runId = decoded.message.run_id;
    const maxAttempts = effectiveMaxAttempts(meta, config, this.deps.maxDeliver);
    const abort = (t.handlerAbort = new AbortController());
    const ctx = createReconcileContext(
      decoded,
      route,
      { subject: msg.subject, deliveryCount: msg.info.redeliveryCount, streamSequence: msg.seq },
      {
        driverName: config.driverName,
        maxAttempts,
        signal: abort.signal,
        logger: this.deps.logs.loggerFor(binding),
      },
    );
    const alreadyAcked = config.ackMode === 'onReceive';
    if (alreadyAcked) {
      // Go parity (at-most-once): from here on a crash loses the event.
      t.settled = true;
      await applyVerb(msg, { kind: 'succeeded', action: 'ack', reason: 'onReceive', level: 'debug' }, logger);
    }
    const timeoutMs = meta.timeoutMs ?? config.reconcileTimeoutMs;
    const report = await runReconcile({ handler, ctx, meta, abort, timeoutMs, around: this.deps.around });
    const { timedOutAfterMs } = report;
    if (timedOutAfterMs !== undefined) {
      t.overdue = true;
      logger.warn(`run ${runId} exceeded ${timedOutAfterMs} ms: aborted, reporting it timed out`);
    }
    const settlement = decideSettlement(
      report.outcome,
      this.state(t.msg, {
        maxAttempts,
        alreadyAcked,
        timedOutAfterMs,
        shutdownAborted: t.deadline.signal.aborted,
      }),
    );
    const target = {
      runId,
      resource: decoded.resource,
      msgId: `${runId}:${config.driverName}:${decoded.message.id}`,
    };
    const final = await this.settle(t, settlement, target, runId);
    binding.resultSent = true; // an overdue handler's lines from here on are late
    if (timedOutAfterMs !== undefined) await this.awaitOverdue(t, report.settled, runId, timedOutAfterMs);
    return final;
  }

  /** A timed-out handler keeps its slot until it lets go, so the instance never runs more than `concurrency`. */
  private async awaitOverdue(
    t: Tracked,
    settled: Promise<unknown>,
    runId: string,
    timedOutAfterMs: number,
  ): Promise<void> {
    const since = Date.now();
    const warning = setTimeout(
      () =>
        this.deps.logger.warn(
          `run ${runId} ignores its abort signal: still holding a run slot ${OVERDUE_WARNING_MS} ms after its ${timedOutAfterMs} ms timeout`,
        ),
      OVERDUE_WARNING_MS,
    );
    await settled;
    clearTimeout(warning);
    t.overdue = false;
    this.deps.logger.log(`run ${runId} let go of its slot ${Date.now() - since} ms after its timeout`);
  }

  /**
   * Dead-letter record, result, then the final verb: the one place a decision is carried out.
   * @returns the row the message finally ended in (a failed publish turns an ack into a shutdown nak).
   */
  private async settle(
    t: Tracked,
    settlement: Settlement,
    target?: ResultTarget,
    runId?: string,
  ): Promise<SettlementKind> {
    const { config, js, logger } = this.deps;
    const { msg } = t;
    const where = `stream seq ${msg.seq}${runId ? ` (run ${runId})` : ''}, delivery ${msg.info.redeliveryCount}`;
    if (settlement.deadLetter) {
      const recorded = await recordDeadLetter(
        {
          reason: settlement.reason,
          driver: config.driverName,
          subject: msg.subject,
          stream: msg.info.stream || MESSAGES_STREAM,
          streamSequence: msg.seq,
          deliveryCount: msg.info.redeliveryCount,
          payload: msg.data,
          runId,
          failedAt: new Date().toISOString(),
        },
        {
          onDeadLetter: config.onDeadLetter,
          subject: config.deadLetterSubject,
          nc: this.deps.nc,
          js,
          logger,
        },
      );
      if (!recorded) {
        // Terminating now would lose the only copy: keep it and try again later.
        settlement = {
          kind: 'retried',
          action: 'nak',
          delayMs: config.retryDelayMs(msg.info.redeliveryCount),
          reason: `dead-letter record not stored, kept for another try: ${settlement.reason}`,
          level: 'error',
        };
      }
    }
    if (settlement.result && target) {
      // The run's lines first: a UI that sees the result finds the whole log (heartbeats continue).
      await this.deps.logs.flushRun(target.runId);
      const bytes = encodeWire(
        toPipelineEvent(target.runId, target.resource, settlement.result, config.driverName),
      );
      const retried = () => this.deps.observers.resultPublishRetried();
      if (!(await publishResult(js, bytes, target.msgId, logger, t.deadline.signal, retried))) {
        settlement = {
          kind: 'shutdown',
          action: 'nak',
          reason: 'result not published before shutdown',
          level: 'warn',
        };
      }
    }
    if (t.drained) return 'shutdown';
    this.record(settlement, where);
    if (t.settled) return settlement.kind;
    t.settled = true;
    await applyVerb(msg, settlement, logger);
    return settlement.kind;
  }

  /** Counts, logs and reports a message's final row: once per message. */
  private record(settlement: Settlement, where: string): void {
    this.counts[settlement.kind] += 1;
    this.log(settlement, where);
    this.deps.observers.messageSettled({ outcome: settlement.kind, action: settlement.action });
  }

  private log(settlement: Settlement, where: string): void {
    const { logger } = this.deps;
    const verb = `${settlement.action}${settlement.delayMs !== undefined ? ` in ${settlement.delayMs} ms` : ''}`;
    const line = `${settlement.kind} ${where}: ${settlement.reason} -> ${verb}`;
    if (settlement.level === 'error') logger.error(line);
    else if (settlement.level === 'warn') logger.warn(line);
    else if (settlement.level === 'log') logger.log(line);
    else logger.debug?.(line);
  }

  /**
   * Shutdown: messages waiting for a handler slot are nak'd at once; in-flight runs get up to
   * `timeoutMs`. Past it, they are aborted and their messages nak'd so another replica reruns them
   * now rather than after AckWait.
   */
  async drain(timeoutMs: number): Promise<void> {
    this.stopping.abort();
    const all = () => Promise.all([...this.tracked].map((r) => r.done));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      all().then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (!timedOut) return;
    for (const t of this.tracked) {
      t.deadline.abort();
      t.handlerAbort?.abort(new Error('shutdown deadline reached'));
      if (!t.settled) {
        t.settled = true;
        t.drained = true;
        const settlement = decideSettlement(
          { kind: 'threw', error: new Error('shutdown deadline reached'), handler: 'in-flight run' },
          this.state(t.msg, { shutdownAborted: true }),
        );
        this.record(settlement, `stream seq ${t.msg.seq}, still running at the shutdown deadline`);
        await applyVerb(t.msg, settlement, this.deps.logger);
      }
    }
  }

  /** A message pulled after shutdown began: offered to another replica now, not after AckWait. */
  async reject(msg: JsMsg): Promise<void> {
    const settlement = decideSettlement({ kind: 'not-started' }, this.state(msg));
    this.record(settlement, `stream seq ${msg.seq}, pulled during shutdown`);
    await applyVerb(msg, settlement, this.deps.logger);
  }
}
