import type { ReconcileContext } from '../reconcile/reconcile-context';
import {
  RunCancelledError,
  ShutdownDeadlineError,
  effectiveMaxAttempts,
} from '../reconcile/reconcile-runner';
import {
  ResultTarget,
  classifyPublishError,
  encodeResult,
  essentialResource,
} from '../settlement/result.publisher';
import { ErrorCode } from 'nats';
import {
  DecisionFacts,
  MessageOutcome,
  Settlement,
  decideSettlement,
  internalFailure,
  refusedResult,
  unpublishableResult,
} from '../settlement/settlement.policy';
import { backoffDelay, sleep } from '../util/backoff';
import { InboundMessage, ResultRefusedError } from './message-port';
import { DecidedMessage, RoutedMessage, routeMessage } from './message-routing';
import { AdmissionResult, admitRun, countedLeaseWaits } from './run-admission';
import { ReconcileStep, reconcileStep } from './reconcile-step';
import type { RunEnvironment } from './run-environment';
import type { RunLineFacts } from './run-line';
import { RunEvent, RunStateName, nextRunState } from './run-states';
import {
  deadLetterOrKeep,
  errorText,
  maskSettlement,
  noResultReason,
  runIdOf,
  sendVerb,
} from './settlement.steps';

/** How long the deadline lets a result publish already on the wire wait for its PubAck. */
export const PUBLISH_GRACE_MS = 2000;

/** Where shutdown still stops a run from starting (its handler was not called yet). */
const WAITING: RunStateName[] = ['received', 'waiting-for-handler', 'waiting-for-slot', 'waiting-for-lease'];

/** Where a cancel still changes the outcome: before a decision exists. */
const CANCELLABLE: RunStateName[] = [...WAITING, 'running'];

/** Why a run still waiting for a slot or a lease stopped: shutdown began (it is nak'd, never started). */
class ShutdownWhileWaitingError extends Error {
  constructor() {
    super('shutdown began while waiting');
    this.name = 'ShutdownWhileWaitingError';
  }
}

/** What happened to a run's result publish. */
type Published = 'stored' | 'maybe-stored' | 'not-stored' | ResultRefusedError;

/**
 * One message from arrival to its final verb: the only owner of its result publish and its
 * ack / nak / term (heartbeats come from {@link MessageRuns}, which asks {@link needsHeartbeat}).
 * The states are in `run-states.ts`; {@link execute} walks them top to bottom and never rejects:
 * whatever throws in any state ends in a settlement decision and a verb.
 */
export class MessageRun {
  private current: RunStateName = 'received';
  private final?: Settlement;
  private handlerOutcome?: MessageOutcome;
  private context?: ReconcileContext;
  private target?: ResultTarget;
  /**
   * Ends every wait of admission (slots, the lease) and aborts the handler (`ctx.signal`): a
   * cancel, the handler's timeout, the shutdown deadline; shutdown itself only while the run still
   * waits. One controller for both: one allocation fewer per message on the hot path.
   */
  private readonly abort = new AbortController();
  /** Attempts this message may use: the handler's own, within `max_deliver`, plus lease waits nak'd. */
  private maxAttempts: number;
  /** Ends the wait of a result publish on the wire at the deadline (set while publishing). */
  private endGrace?: () => void;
  private handlerEndedAt?: number;
  /** Hides secrets in text leaving the run (the handler's `mask()` values once it ran, `logs.mask` always). */
  private mask = (text: string): string => this.env.logs.maskText(undefined, text);
  /** `ackMode: 'onReceive'` acked it before the run. */
  private acked = false;
  /** Set once the result was cut down after the server refused it: a second refusal dead-letters. */
  private shrunk = false;
  /** No result can be stored for this run (refused for good): the rest is a dead letter, still naming the run. */
  private resultImpossible = false;
  private startedAt?: number;
  private resourceType = '';
  /** The decoded message's event and resource, for the settlement line. */
  private named?: { event: string; resourceType: string; resource: string };
  readonly receivedAt = Date.now();
  private cancelReason?: string;
  /** The run's timeout elapsed but its handler still holds its slot. */
  overdue = false;

  constructor(
    private readonly env: RunEnvironment,
    readonly message: InboundMessage,
  ) {
    this.maxAttempts = env.config.maxAttempts;
  }

  get state(): RunStateName {
    return this.current;
  }
  /** The row the message ended in (once settled). */
  get settlement(): Settlement | undefined {
    return this.final;
  }
  /** How the handler (or routing) ended, when it got that far. */
  get outcome(): MessageOutcome | undefined {
    return this.handlerOutcome;
  }
  get ctx(): ReconcileContext | undefined {
    return this.context;
  }
  /** True while the message needs `working()` to keep its AckWait from running out. */
  get needsHeartbeat(): boolean {
    return this.current !== 'settled' && !this.acked;
  }
  /** Waiting for a run slot (counted against what the session may pull). */
  get queued(): boolean {
    return this.current === 'received' || this.current === 'waiting-for-slot';
  }

  /** The whole life of the message. Never rejects. */
  async execute(): Promise<void> {
    try {
      await this.live();
    } catch (err) {
      await this.recover(err);
    }
  }

  /** The run id, once decoded. */
  get runId(): string | undefined {
    return this.target?.runId;
  }

  /** Cancelled by request: a running handler is aborted, a waiting run never starts. False once reported. */
  cancel(reason: string): boolean {
    if (!CANCELLABLE.includes(this.current)) return false;
    this.cancelReason ??= reason;
    this.abort.abort(new RunCancelledError(reason));
    return true;
  }

  /** Shutdown began: a message still waiting (a slot, a lease) is nak'd now; a running one finishes. */
  shutdown(): void {
    if (WAITING.includes(this.current)) this.abort.abort(new ShutdownWhileWaitingError());
  }

  /** The shutdown deadline: abort the handler; what cannot have a stored result is nak'd. */
  deadline(): void {
    this.abort.abort(new ShutdownDeadlineError());
    if (this.current === 'publishing') setTimeout(() => this.endGrace?.(), PUBLISH_GRACE_MS);
  }

  /** How long the handler ran (undefined when it did not run). */
  get handlerMs(): number | undefined {
    return this.startedAt !== undefined && this.handlerEndedAt !== undefined
      ? this.handlerEndedAt - this.startedAt
      : undefined;
  }

  /**
   * The life of the message, top to bottom: decode, admit, invoke, then report (decide, record,
   * publish, settle). Each step hands the next what it needs; whatever a step takes, the step that
   * took it gives back (admission's slots and lease in the finally below).
   */
  private async live(): Promise<void> {
    const routed = this.decode();
    if (routed.kind === 'decided') return this.reportWithout(routed.outcome);
    const admitted = await this.admit(routed);
    if (admitted.kind === 'decided') return this.reportWithout(admitted.outcome);
    // From here until the finally, this run owns what admission took: slots, and maybe a lease.
    const { admission } = admitted;
    let overdue: Promise<void> | undefined;
    try {
      const step = await this.invoke(routed);
      // A handler past its timeout, cancel or the shutdown deadline keeps its slots and the lease
      // until it lets go: the instance never runs more than `concurrency`, a resource never two
      // handlers at once.
      overdue = step.overdue;
      if (overdue) this.overdue = true;
      else admission.handlerLetGo();
      await this.report(step.settlement);
    } finally {
      if (overdue) {
        await overdue;
        this.overdue = false;
      }
      const releasing = admission.release();
      if (releasing) await releasing;
    }
  }

  /** received: decode once, route by subject and event. */
  private decode(): RoutedMessage | DecidedMessage {
    const routed = routeMessage(this.env, this.message);
    this.target = routed.target;
    if (routed.kind === 'handler') {
      const { message, resource } = routed.decoded;
      this.named = { event: message.event, resourceType: resource.resource, resource: resource.name };
      this.transition('routed');
    }
    return routed;
  }

  /** waiting-for-handler, waiting-for-slot, running (the lease), waiting-for-lease. */
  private admit(routed: RoutedMessage): Promise<AdmissionResult> {
    const waits = countedLeaseWaits(this.env, routed, this.message);
    return typeof waits === 'number'
      ? this.admitWith(routed, waits)
      : waits.then((counted) => this.admitWith(routed, counted));
  }

  private admitWith(routed: RoutedMessage, leaseWaits: number): Promise<AdmissionResult> {
    this.maxAttempts = effectiveMaxAttempts(
      routed.meta,
      this.env.config,
      this.env.consumer().maxDeliver,
      leaseWaits,
    );
    return admitRun(this.env, {
      routed,
      message: this.message,
      leaseWaits,
      signal: this.abort.signal,
      cancelled: () => this.cancelReason,
      transition: (event) => this.transition(event),
    });
  }

  /** running: the stale-event check and the handler, decided on its end. */
  private async invoke(routed: RoutedMessage): Promise<ReconcileStep> {
    const step = await reconcileStep(this.env, routed, this.message, {
      abort: this.abort,
      maxAttempts: this.maxAttempts,
      decide: (outcome, facts) => this.decide(outcome, facts),
      ackOnReceive: () => this.ackOnReceive(),
      ctx: (ctx) => (this.context = ctx),
    });
    this.handlerOutcome = step.outcome;
    this.startedAt = step.startedAt;
    this.mask = step.mask;
    this.handlerEndedAt = Date.now();
    this.resourceType = routed.route.resource;
    this.transition('handler-finished');
    return step;
  }

  /** Decided without a handler run (undecodable, unrouted, cancelled, shut down while waiting…). */
  private reportWithout(outcome: MessageOutcome): Promise<void> {
    this.handlerOutcome = outcome;
    this.transition('decided');
    return this.report(this.decide(outcome));
  }

  /** reporting: dead-letter record, the run's stored lines (a nak too), the result if any, the verb. */
  private async report(settlement: Settlement): Promise<void> {
    settlement = maskSettlement(settlement, this.mask);
    if (settlement.deadLetter) settlement = await this.recordDeadLetter(settlement);
    const target = this.resultImpossible ? undefined : this.target;
    if (target && !settlement.result) await this.env.port.flushRunLogs(target.runId, this.env.deadline);
    if (!settlement.result || !target) return this.finish(settlement);
    if (this.acked) return this.publishAfterAck(settlement, target);
    if (this.env.deadline.aborted) return this.finish(this.deadlineNak());
    const encoded = encodeResult(
      target,
      settlement.result,
      this.env.config.driverName,
      this.env.port.maxPayload,
    );
    if (encoded.kind === 'refused') return this.refuse(encoded.reason, false);
    if (encoded.kind === 'replaced') {
      this.env.logger.warn(`run ${target.runId}: ${encoded.settlement.reason}`);
      settlement = encoded.settlement;
    }
    // The run's lines first: a UI that sees the result finds the whole log.
    await this.env.port.flushRunLogs(target.runId, this.env.deadline);
    if (this.env.deadline.aborted) return this.finish(this.deadlineNak());
    const published = await this.publish(encoded.bytes, target.msgId);
    if (published instanceof ResultRefusedError) {
      return this.refuse(published.message, published.cause === 'max-payload');
    }
    if (published === 'not-stored') return this.finish(this.deadlineNak());
    if (published === 'maybe-stored') {
      this.env.logger.warn(
        `run ${target.runId}: no PubAck within ${PUBLISH_GRACE_MS} ms of the shutdown deadline; ` +
          'acked, since the result may be stored (a rerun would publish a second one)',
      );
    }
    this.finish(settlement);
  }

  /**
   * publishing: retried with backoff while transient (heartbeats go on); a refusal returns at once.
   * After the deadline only the attempt on the wire may still land, within a short grace.
   */
  private async publish(bytes: Uint8Array, msgId: string): Promise<Published> {
    let mayBeStored = false;
    const deadline = this.env.deadline;
    for (let attempt = 1; ; attempt++) {
      this.transition('result-sent');
      try {
        return (await this.withinGrace(this.env.port.publishResult(bytes, msgId)))
          ? 'stored'
          : 'maybe-stored';
      } catch (err) {
        const errorClass = classifyPublishError(err);
        this.env.observers.resultPublishFailed({ errorClass });
        if (errorClass !== 'transient') {
          return err instanceof ResultRefusedError ? err : new ResultRefusedError(errorText(err), errorClass);
        }
        // No responders: nothing was stored. Anything else (a timeout) may have been.
        mayBeStored ||= (err as { code?: string }).code !== ErrorCode.NoResponders;
        if (!deadline.aborted) {
          this.env.observers.resultPublishRetried();
          this.env.logger.warn(
            `publishing result ${msgId} failed (attempt ${attempt}): ${errorText(err)}; retrying`,
          );
          await sleep(backoffDelay(attempt, 250, 5000), deadline);
        }
        if (deadline.aborted) return mayBeStored ? 'maybe-stored' : 'not-stored';
      }
    }
  }

  /** True when `publish` lands, false when the deadline's grace runs out first; rejects with its error. */
  private async withinGrace(publish: Promise<void>): Promise<boolean> {
    const landed = publish.then(() => true);
    // The race may be decided by the grace: a later rejection must not go unhandled.
    landed.catch(() => undefined);
    const grace = new Promise<boolean>((resolve) => (this.endGrace = () => resolve(false)));
    if (this.env.deadline.aborted) setTimeout(() => this.endGrace?.(), PUBLISH_GRACE_MS);
    try {
      return await Promise.race([landed, grace]);
    } finally {
      this.endGrace = undefined;
    }
  }

  /**
   * The result cannot be stored as it is. One the server found too big (a stream's `max_msg_size`
   * below `max_payload`) is replaced once by a small failure result; otherwise, or when that is
   * refused too, no result can be stored: dead-letter, then term.
   */
  private async refuse(reason: string, tooBig: boolean): Promise<void> {
    this.transition('result-refused');
    this.env.logger.error(`${this.where()}: result refused: ${reason}`);
    if (tooBig && !this.shrunk && this.target) {
      this.shrunk = true;
      this.target = { ...this.target, resource: essentialResource(this.target.resource) };
      return this.report(refusedResult(reason));
    }
    this.resultImpossible = true;
    return this.report(unpublishableResult(reason));
  }

  /** `ackMode: 'onReceive'`: the message is already acked; the result is best effort. */
  private async publishAfterAck(settlement: Settlement, target: ResultTarget): Promise<void> {
    const { port, config, logger } = this.env;
    const encoded = encodeResult(target, settlement.result!, config.driverName, port.maxPayload);
    if (encoded.kind === 'refused') {
      logger.error(`${this.where()}: no result published: ${encoded.reason}`);
      return this.finish(settlement);
    }
    if (encoded.kind === 'replaced') settlement = encoded.settlement;
    await port.flushRunLogs(target.runId, this.env.deadline);
    const published = await this.publish(encoded.bytes, target.msgId);
    if (published !== 'stored')
      logger.warn(`${this.where()}: result not confirmed stored (${String(published)})`);
    this.finish(settlement);
  }

  private deadlineNak(): Settlement {
    const aborted = { kind: 'threw' as const, error: new ShutdownDeadlineError(), handler: 'in-flight run' };
    return this.decide(aborted, { shutdownAborted: true });
  }

  private recordDeadLetter(settlement: Settlement): Promise<Settlement> {
    return deadLetterOrKeep(this.env, this.message, settlement, {
      runId: this.target?.runId ?? runIdOf(this.handlerOutcome),
      noResult:
        settlement.result && this.target && !this.resultImpossible
          ? undefined
          : noResultReason(this.handlerOutcome, settlement),
    });
  }

  /** The final verb, once. */
  private finish(settlement: Settlement): void {
    if (this.current === 'settled') return;
    this.final = settlement;
    const { message, env } = this;
    if (!this.acked) sendVerb(message, settlement, env);
    this.transition('verb-sent');
    env.record(settlement, () => this.lineFacts());
    env.unrouted(message.streamSequence, settlement.kind === 'unrouted', settlement.delayMs);
    if (this.startedAt !== undefined && env.observers.listening) {
      env.observers.runFinished({
        resourceType: this.resourceType,
        outcome: settlement.kind,
        durationMs: Date.now() - this.startedAt,
      });
    }
  }

  private ackOnReceive(): void {
    // Go parity (at-most-once): from here on a crash loses the event.
    this.message.ack();
    this.acked = true;
  }

  /** Total: an exception anywhere ends in a decision and a verb (or, once settled, in a log line). */
  private async recover(err: unknown): Promise<void> {
    const logger = this.env.logger;
    logger.error(
      `${this.where()}: unexpected error in state ${this.current}: ${(err as Error)?.stack ?? err}`,
    );
    if (this.current === 'settled') return;
    this.transition('error');
    try {
      // Publishing: the result may be stored, so acking beats a rerun; anywhere else report the failure.
      if (this.current === 'publishing') this.finish(internalFailure(err));
      else await this.report(internalFailure(err));
    } catch (again) {
      logger.error(`${this.where()}: settling failed too (${(again as Error)?.message}): nak`);
      this.finish({ kind: 'retried', action: 'nak', reason: 'internal error', level: 'error' });
    }
  }

  /**
   * The run's settlement decision, with every input built here: the delivery, the attempts this
   * handler may use (its own `maxAttempts`, the live consumer's `max_deliver`, lease waits), the
   * message's age, whether it was acked on receipt, and what the handler's end adds. A shutdown
   * deadline that hits while reporting decides again through here.
   */
  private decide(outcome: MessageOutcome, facts: DecisionFacts = {}): Settlement {
    const { config } = this.env;
    return decideSettlement(outcome, {
      deliveryCount: this.message.deliveryCount,
      maxAttempts: this.maxAttempts,
      retryDelayMs: config.retryDelayMs,
      retryApiErrors: config.retryApiErrors,
      messageAgeMs: Date.now() - this.message.storedAtMs,
      unroutedDeadLetterMs: config.unroutedDeadLetterMs,
      alreadyAcked: this.acked,
      ...facts,
    });
  }

  private transition(event: RunEvent): void {
    this.current = nextRunState(this.current, event);
  }

  /** Where the run is, for a person: its message, state, and whether its handler is overdue. */
  describe(): string {
    return `${this.where()}: ${this.overdue ? 'handler ignores its abort signal' : this.current}`;
  }

  /** What the settlement line names (run-line.ts words it). */
  private lineFacts(): RunLineFacts {
    return {
      ...this.named,
      runId: this.target?.runId ?? runIdOf(this.handlerOutcome),
      streamSequence: this.message.streamSequence,
      deliveryCount: this.message.deliveryCount,
      durationMs: Date.now() - this.receivedAt,
    };
  }

  private where(): string {
    const m = this.message;
    const run = this.target?.runId ?? runIdOf(this.handlerOutcome);
    return `stream seq ${m.streamSequence}${run ? ` (run ${run})` : ''}, delivery ${m.deliveryCount}`;
  }
}
