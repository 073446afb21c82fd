import type { MessageHandler } from '@nestjs/microservices';
import { isObservable, lastValueFrom } from 'rxjs';
import type { RunLogger } from '../logger/run-logger';
import type { DecodedMessage, MessageRoute } from '../protocol';
import type { ReconcileOutcome } from '../settlement/settlement.policy';
import { abortable } from '../util/abortable';
import { ReconcileContext, ReconcileContextInit, retryRequestedBy, thrownBy } from './reconcile-context';
import type { ReconcileHandlerMeta } from './reconcile.decorator';

/** Where a message came from, beyond its decoded body. */
export interface MessageEnvelope {
  subject: string;
  deliveryCount: number;
  streamSequence: number;
}

/** Builds the context of one run; the handler gets the resource decoded from the payload as its own. */
export function createReconcileContext(
  decoded: DecodedMessage,
  route: MessageRoute,
  envelope: MessageEnvelope,
  run: {
    driverName: string;
    maxAttempts: number;
    signal: AbortSignal;
    logger: RunLogger;
    controls?: ReconcileContextInit['controls'];
  },
): ReconcileContext {
  const { message, payload, resource } = decoded;
  return new ReconcileContext({
    event: message.event,
    runId: message.run_id,
    messageId: message.id,
    subject: envelope.subject,
    resourceType: route.resource,
    deliveryCount: envelope.deliveryCount,
    maxAttempts: run.maxAttempts,
    streamSequence: envelope.streamSequence,
    driverName: run.driverName,
    payload,
    // Parsed once, by the decoder, and the handler's alone: the result carries the payload text as
    // received (the run's target), whatever the handler does to this object.
    resource,
    signal: run.signal,
    logger: run.logger,
    controls: run.controls,
  });
}

/**
 * Attempts a retryable failure may use: the handler's or the module's `maxAttempts`, plus the
 * deliveries spent only waiting for a resource lease (nak'd, nothing ran), but never more than the
 * consumer's `max_deliver` (the server stops redelivering there, and the last attempt must still
 * publish its failure result).
 */
export function effectiveMaxAttempts(
  meta: ReconcileHandlerMeta,
  config: { maxAttempts: number },
  maxDeliver = -1,
  leaseWaits = 0,
): number {
  return Math.min(
    (meta.maxAttempts ?? config.maxAttempts) + leaseWaits,
    maxDeliver > 0 ? maxDeliver : Infinity,
  );
}

/** One handler run to start. */
export interface ReconcileInvocation {
  handler: MessageHandler;
  meta: ReconcileHandlerMeta;
  ctx: ReconcileContext;
  /** Aborted (through `ctx.signal`) when the timeout elapses. */
  abort: AbortController;
  /** Ceiling in ms; 0 = none. */
  timeoutMs: number;
  /** Wraps the call, e.g. in Nest's processing hooks. */
  around?: (ctx: ReconcileContext, call: () => Promise<ReconcileOutcome>) => Promise<ReconcileOutcome>;
}

/** Why `ctx.signal` aborts when the shutdown deadline cuts a run short. */
export class ShutdownDeadlineError extends Error {
  constructor() {
    super('shutdown deadline reached');
    this.name = 'ShutdownDeadlineError';
  }
}

/** Why `ctx.signal` aborts when someone cancels the run (`RunControl.cancel`): distinct from a timeout. */
export class RunCancelledError extends Error {
  constructor(readonly reason: string) {
    super(`cancelled: ${reason}`);
    this.name = 'RunCancelledError';
  }
}

/** How a run ended for settlement, and when the handler actually let go. */
export interface ReconcileRunReport {
  outcome: ReconcileOutcome;
  /** Set when the timeout decided the run; the handler may still be running (`settled` tells when not). */
  timedOutAfterMs?: number;
  /** Set when the shutdown deadline (an abort with {@link ShutdownDeadlineError}) decided the run. */
  shutdownAborted?: boolean;
  /** Set when a cancel (an abort with {@link RunCancelledError}) decided the run: its reason. */
  cancelledReason?: string;
  /** Resolves once the handler has settled, whatever it returned. Never rejects. */
  settled: Promise<ReconcileOutcome>;
}

/**
 * Runs a handler through Nest's pipeline with the run's timeout. At the timeout, or when `abort`
 * is aborted from outside (the shutdown deadline), the run is decided at once without waiting for
 * the handler: a handler that ignores its signal does not hold up the message, but keeps its slot
 * until `settled`.
 */
export async function runReconcile(inv: ReconcileInvocation): Promise<ReconcileRunReport> {
  if (inv.abort.signal.aborted) {
    // Cancelled (or past the deadline) before the handler was called: it is not called at all.
    const outcome: ReconcileOutcome = {
      kind: 'threw',
      error: inv.abort.signal.reason,
      handler: inv.meta.handler,
    };
    return abortedReport(inv, outcome, Promise.resolve(outcome));
  }
  const call = () => invokeHandler(inv.handler, inv.ctx.resource, inv.ctx, inv.meta.handler);
  const settled = (inv.around ? inv.around(inv.ctx, call) : call()).catch(
    (error: unknown): ReconcileOutcome => ({ kind: 'threw', error, handler: inv.meta.handler }),
  );
  const signal = inv.abort.signal;
  const first = await abortable(settled, signal, inv.timeoutMs);
  if (first.ended === 'done') return { outcome: first.value, settled };
  // The timeout aborts `ctx.signal` too, with its own reason: the handler is told why.
  if (first.ended === 'timed-out')
    inv.abort.abort(new Error(`reconcile timed out after ${inv.timeoutMs} ms`));
  const outcome: ReconcileOutcome = { kind: 'threw', error: signal.reason, handler: inv.meta.handler };
  return abortedReport(inv, outcome, settled);
}

/** The run was decided by its abort: the shutdown deadline, a cancel, or else its timeout. */
function abortedReport(
  inv: ReconcileInvocation,
  outcome: ReconcileOutcome,
  settled: Promise<ReconcileOutcome>,
): ReconcileRunReport {
  const reason: unknown = inv.abort.signal.reason;
  if (reason instanceof ShutdownDeadlineError) return { outcome, shutdownAborted: true, settled };
  if (reason instanceof RunCancelledError) return { outcome, cancelledReason: reason.reason, settled };
  return { outcome, timedOutAfterMs: inv.timeoutMs, settled };
}

/** Calls the Nest-wrapped handler and collapses Promise/Observable results into one outcome. */
async function invokeHandler(
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
    const retry = retryRequestedBy(ctx);
    // A recorded error with a value means an exception filter turned the error into that value.
    return recorded
      ? { kind: 'threw', error: recorded.error, handler: name, retry, recovered: value }
      : { kind: 'returned', value, handler: name, retry };
  } catch (error) {
    // Prefer the original value recorded by the outcome interceptor over what Nest's exception
    // layer (or a throwing HTTP-only filter) turned it into.
    return {
      kind: 'threw',
      error: thrownBy(ctx)?.error ?? error,
      handler: name,
      retry: retryRequestedBy(ctx),
    };
  }
}
