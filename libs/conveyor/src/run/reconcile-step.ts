import { Logger } from '@nestjs/common';
import { inRunSpan } from '../tracing/optional-tracing';
import { RunCleanups } from '../run-control/run-cleanup';
import { RunControls } from '../run-control/run-controls';
import { RunProgressReporter } from '../run-control/run-progress';
import { RunBinding, createRunBinding, runScope } from '../logger/run-scope';
import type { ReconcileContext } from '../reconcile/reconcile-context';
import { createReconcileContext, runReconcile } from '../reconcile/reconcile-runner';
import type { DecisionFacts, MessageOutcome, Settlement } from '../settlement/settlement.policy';
import { describeViolation } from '../resources/spec-validator';
import type { InboundMessage } from './message-port';
import type { RoutedMessage } from './message-routing';
import type { RunEnvironment } from './run-environment';

/** A run that ignores its abort signal this long after its timeout gets a second, louder warning. */
const OVERDUE_WARNING_MS = 5000;

/** What the running state produced. */
export interface ReconcileStep {
  outcome: MessageOutcome;
  settlement: Settlement;
  /** Set when the handler timed out but still runs: resolves when it lets go of its slot. */
  overdue?: Promise<void>;
  /** When the handler started (undefined when the stale-event guard ended the message first). */
  startedAt?: number;
  /** Hides the run's masked values (`logger.mask()`, `logs.mask`) in text leaving the run. */
  mask: (text: string) => string;
}

/** What the run hands the step: its abort controller, and what it must know as it happens. */
export interface StepHooks {
  abort: AbortController;
  /** Attempts the message may use (the handler's own, within the consumer's `max_deliver`). */
  maxAttempts: number;
  /** The run's one settlement decision: its inputs are the run's, `facts` what the handler's end adds. */
  decide: (outcome: MessageOutcome, facts?: DecisionFacts) => Settlement;
  /** `ackMode: 'onReceive'`: ack now, before the handler. */
  ackOnReceive: () => void;
  ctx: (ctx: ReconcileContext) => void;
}

/**
 * The running state: the stale-event check, then the handler through Nest's pipeline in the run's
 * log scope (an injected DriverLogger finds the run anywhere below) and an OpenTelemetry span.
 */
export async function reconcileStep(
  env: RunEnvironment,
  routed: RoutedMessage,
  message: InboundMessage,
  hooks: StepHooks,
): Promise<ReconcileStep> {
  const { decoded, route, meta } = routed;
  const { config } = env;
  const binding = createRunBinding({
    runId: decoded.message.run_id,
    driver: config.driverName,
    pipeline: decoded.resource.pipeline ?? '',
    event: decoded.message.event,
    messageId: decoded.message.id,
    delivery: message.deliveryCount,
    resource: decoded.resource.name,
    resourceType: decoded.resource.resource,
  });
  const { maxAttempts } = hooks;
  const mask = (text: string) => env.logs.maskText(binding, text);
  try {
    return await runScope.run(binding, async (): Promise<ReconcileStep> => {
      const stale = await env.checkStale?.(decoded, route);
      if (stale) return { outcome: stale, settlement: hooks.decide(stale), mask };
      const invalid = meta.spec && invalidSpec(env, routed);
      if (invalid) {
        const settlement = hooks.decide(invalid);
        noteUnsuccessful(env, binding, invalid, settlement);
        return { outcome: invalid, settlement, mask };
      }
      const controls = new StepControls(env, binding.runId);
      const ctx = createReconcileContext(
        decoded,
        route,
        {
          subject: message.subject,
          deliveryCount: message.deliveryCount,
          streamSequence: message.streamSequence,
        },
        {
          driverName: config.driverName,
          maxAttempts,
          signal: hooks.abort.signal,
          logger: env.logs.loggerFor(binding),
          controls,
        },
      );
      hooks.ctx(ctx);
      binding.context = ctx;
      const alreadyAcked = config.ackMode === 'onReceive';
      if (alreadyAcked) hooks.ackOnReceive();
      const startedAt = Date.now();
      if (env.observers.listening)
        env.observers.runStarted({ resourceType: route.resource, deliveryCount: message.deliveryCount });
      const spanStart = () => ({
        name: `reconcile ${route.resource}`,
        attributes: {
          'conveyor.run_id': binding.runId,
          'conveyor.driver': binding.driver,
          'conveyor.resource': binding.resource,
          'conveyor.resource_type': route.resource,
          'conveyor.event': binding.event,
          'conveyor.delivery_count': message.deliveryCount,
          'messaging.system': 'nats',
          'messaging.destination.name': message.subject,
        },
      });
      return inRunSpan(spanStart, async (span) => {
        binding.traced = span.traced;
        try {
          const timeoutMs = meta.timeoutMs ?? config.reconcileTimeoutMs;
          const report = await runReconcile({
            handler: routed.handler,
            ctx,
            meta,
            abort: hooks.abort,
            timeoutMs,
            around: env.around,
          });
          const { timedOutAfterMs, shutdownAborted, cancelledReason } = report;
          if (timedOutAfterMs !== undefined) {
            env.logger.warn(
              `run ${binding.runId} exceeded ${timedOutAfterMs} ms: aborted, reporting it timed out`,
            );
          }
          const settlement = hooks.decide(report.outcome, {
            timedOutAfterMs,
            shutdownAborted,
            cancelledReason,
          });
          if (cancelledReason !== undefined)
            env.logger.warn(`run ${binding.runId} cancelled: ${cancelledReason}`);
          span.setAttribute('conveyor.outcome', settlement.kind);
          const progress = controls.endProgress();
          if (progress) span.setAttribute('conveyor.progress', progress.fraction);
          if (progress?.phase !== undefined) span.setAttribute('conveyor.phase', progress.phase);
          if (settlement.kind !== 'succeeded') {
            span.fail(settlement.kind);
            noteUnsuccessful(env, binding, report.outcome, settlement);
          }
          // The run ended, whatever its handler still does: cleanups before the result and verb.
          const cleaning = controls.runCleanups(settlement);
          if (cleaning) await cleaning;
          // Decided by its abort, not by its handler: the handler may still run, and keeps what the
          // run holds until it lets go (a rerun elsewhere must not overlap it on this instance).
          const decidedEarly =
            timedOutAfterMs !== undefined || cancelledReason !== undefined || shutdownAborted === true;
          const overdue = decidedEarly ? awaitOverdue(env, report.settled, binding.runId, report) : undefined;
          return { outcome: report.outcome, settlement, overdue, startedAt, mask };
        } finally {
          span.end();
        }
      });
    });
  } finally {
    // Lines an overdue handler logs from here on are late.
    binding.resultSent = true;
  }
}

/**
 * `@Reconcile({ spec })`: the payload's `spec` checked by its generated validator before the
 * handler (after the stale-event check: a stale event is skipped whatever its spec). A mismatch is
 * an outcome, counted, and the handler is never called with it.
 */
function invalidSpec(env: RunEnvironment, routed: RoutedMessage): MessageOutcome | undefined {
  const validator = routed.meta.spec!;
  const violation = validator.check(routed.decoded.resource.spec);
  if (!violation) return undefined;
  if (env.observers.listening) {
    env.observers.specRejected({ resourceType: routed.route.resource, rule: violation.rule });
  }
  const reason = describeViolation(validator, violation);
  return { kind: 'invalid-spec', handler: routed.meta.handler, reason, violation };
}

/**
 * Why the run did not succeed, as the last line of its own log (`GET /logs` shows why a step
 * failed), but not again in the process log: its settlement line says it there, once. The stack of
 * a thrown error goes to the process log at debug only.
 */
function noteUnsuccessful(
  env: RunEnvironment,
  binding: RunBinding,
  outcome: MessageOutcome,
  settlement: Settlement,
): void {
  const level = settlement.kind === 'retried' ? 'warn' : 'error';
  const reason = settlement.reason.startsWith(`${settlement.kind}: `)
    ? settlement.reason
    : `${settlement.kind}: ${settlement.reason}`;
  env.logs.write(binding, level, reason, undefined, 'runtime');
  if (outcome.kind === 'threw' && outcome.error instanceof Error && Logger.isLevelEnabled('debug')) {
    env.logger.debug?.(`run ${binding.runId}: ${outcome.error.stack}`);
  }
}

/** Resolves when a timed-out or cancelled handler finally lets go, warning once if it keeps ignoring its signal. */
async function awaitOverdue(
  env: RunEnvironment,
  settled: Promise<unknown>,
  runId: string,
  decidedBy: { timedOutAfterMs?: number; shutdownAborted?: boolean },
): Promise<void> {
  const since = Date.now();
  const after =
    decidedBy.timedOutAfterMs !== undefined
      ? `its ${decidedBy.timedOutAfterMs} ms timeout`
      : decidedBy.shutdownAborted
        ? 'the shutdown deadline'
        : 'its cancel';
  const warning = setTimeout(() => {
    env.logger.warn(
      `run ${runId} ignores its abort signal: still holding a run slot ${OVERDUE_WARNING_MS} ms after ${after}`,
    );
    env.stuck.track(`run ${runId}: its handler ignores its abort signal after ${after}`, settled);
  }, OVERDUE_WARNING_MS);
  await settled;
  clearTimeout(warning);
  env.logger.log(`run ${runId} let go of its slot ${Date.now() - since} ms after ${after}`);
}

/** The run's cleanup hooks and progress reporter (`ctx.onCleanup`, `ctx.progress`), made on first use. */
class StepControls extends RunControls {
  constructor(
    private readonly env: RunEnvironment,
    private readonly runId: string,
  ) {
    super();
  }

  protected createCleanups(): RunCleanups {
    const { env, runId } = this;
    const { config, observers, logger } = env;
    return new RunCleanups(config.cleanupTimeoutMs, `run ${runId}`, logger, (stillRunning) => {
      observers.cleanupFailed();
      if (stillRunning) env.stuck.track(`a cleanup hook of run ${runId}`, stillRunning);
    });
  }

  protected createProgress(): RunProgressReporter {
    const { config, observers, port } = this.env;
    return new RunProgressReporter(
      this.runId,
      config.driverName,
      (report) => port.publishProgress(report),
      (from, to) => observers.runPhaseChanged({ from, to }),
    );
  }
}
