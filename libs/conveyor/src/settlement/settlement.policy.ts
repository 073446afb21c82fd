import type { DriverResult, Resource } from '../protocol';
import { isTransientApiError } from '../client/conveyor-api.error';
import { isRetryableError } from './retryable.error';
import type { SpecViolation } from '../resources/spec-validator';

/** A retry asked for by `ctx.retry()` or a `RetryableError`: a delay (else the backoff curve's) and why. */
export interface RetryRequest {
  delayMs?: number;
  reason: string;
}

/** How a handler run ended, as seen by the transport. */
export type ReconcileOutcome =
  /** The handler's pipeline completed with this value (after interceptors and filters). */
  | { kind: 'returned'; value: unknown; handler: string; retry?: RetryRequest }
  /**
   * The handler, a pipe or an interceptor threw `error` (the original value when we saw it). When an
   * exception filter turned it into a value, that value is `recovered`.
   */
  | { kind: 'threw'; error: unknown; handler: string; retry?: RetryRequest; recovered?: unknown };

/** Everything that can happen to a message, including what ends it before a handler runs. */
export type MessageOutcome =
  | ReconcileOutcome
  /** Bad JSON, a payload that is not a Resource, a missing or unsafe run id… */
  | { kind: 'undecodable'; reason: string; runId?: string; resource?: Resource }
  /** No handler for the subject here (rolling deploy: the filters were set by a newer replica). */
  | { kind: 'no-handler'; subject: string; event: string }
  /** The resource has a handler, but its `events` list leaves this event out. */
  | { kind: 'filtered'; handler: string; event: string; pipelineStep: boolean }
  /** Pulled, but shutdown began before it started. */
  | { kind: 'not-started' }
  /** The stale-event guard found the resource deleted or replaced since the event. */
  | { kind: 'stale'; reason: string }
  /** What the run needs before its handler could not be looked up (the API, the lease store): `reason` says which. */
  | { kind: 'lookup-failed'; reason: string }
  /** Cancelled (`RunControl.cancel`) before its handler started. */
  | { kind: 'cancelled'; reason: string }
  /** `perResource`: another run holds the resource's lease; this event waits its turn. */
  | { kind: 'resource-busy'; resource: string; holderRunId: string; delayMs: number }
  /**
   * The payload's `spec` does not match the handler's generated validator (`@Reconcile({ spec })`),
   * so the handler was not called. `reason` names the path and the rule.
   */
  | { kind: 'invalid-spec'; handler: string; reason: string; violation: SpecViolation };

/** What the transport knows about the message beyond the outcome. */
export interface RunState {
  /** Delivery count of this message, 1 on the first delivery. */
  deliveryCount: number;
  /** Deliveries a retryable failure may use (the handler's or the module's `maxAttempts`). */
  maxAttempts: number;
  /** Delay before the next attempt when the handler gave none: the backoff curve. */
  retryDelayMs: (deliveryCount: number) => number;
  /** `ackMode: 'onReceive'` acked the message before the run: it cannot be redelivered any more. */
  alreadyAcked?: boolean;
  /** Set when the run's timeout elapsed and it was aborted. */
  timedOutAfterMs?: number;
  /** Set when a cancel aborted the run: its reason. */
  cancelledReason?: string;
  /** The shutdown deadline aborted the run: another replica must rerun it. */
  shutdownAborted?: boolean;
  /** How long ago the message was stored in the stream (bounds how long nobody may handle it). */
  messageAgeMs?: number;
  /** A message no handler here serves is dead-lettered once it is this old (0: never). */
  unroutedDeadLetterMs?: number;
  /** A transient ConveyorApiError thrown by the handler is retried like a RetryableError (`retryApiErrors`). */
  retryApiErrors?: boolean;
}

/** What the end of a handler run adds to the run's own inputs: how it was cut short, if it was. */
export type DecisionFacts = Pick<RunState, 'timedOutAfterMs' | 'shutdownAborted' | 'cancelledReason'>;

/** The row of the settlement table a message ended in: a bounded label for logs and metrics. */
export type SettlementKind =
  | 'succeeded'
  | 'failed'
  | 'retried'
  | 'gave-up'
  | 'timed-out'
  | 'filtered'
  | 'unrouted'
  | 'dead-lettered'
  | 'stale'
  | 'cancelled'
  | 'waiting'
  | 'shutdown';

/** What to do with a message: an optional dead-letter record and result first, then one final verb. */
export interface Settlement {
  kind: SettlementKind;
  result?: DriverResult;
  action: 'ack' | 'nak' | 'term';
  delayMs?: number;
  /** Why, for logs, dead-letter records and term reasons. */
  reason: string;
  /** Hand a dead-letter record to the hook and the dead-letter subject before the verb. */
  deadLetter?: boolean;
  /** How loudly the transport logs it. */
  level: 'debug' | 'log' | 'warn' | 'error';
}

/** First delay before a message nobody here handles is offered again (rolling deploys: another replica may). */
export const UNROUTED_NAK_DELAY_MS = 5000;
/** The no-handler delay stays at the base this many deliveries (a rolling deploy settles within a minute). */
export const UNROUTED_FLAT_DELIVERIES = 10;
/** Past those it doubles per delivery up to this, so a retired subject costs little until it is dead-lettered. */
export const UNROUTED_NAK_MAX_DELAY_MS = 5 * 60_000;

/** The nak delay for the `deliveryCount`-th delivery of a message no handler here serves. */
export function unroutedDelayMs(deliveryCount: number): number {
  const doublings = Math.min(20, Math.max(0, deliveryCount - UNROUTED_FLAT_DELIVERIES));
  return Math.min(UNROUTED_NAK_MAX_DELAY_MS, UNROUTED_NAK_DELAY_MS * 2 ** doublings);
}

/** The message of whatever was thrown: Error, Nest RPC error payload `{ message }`, string, or other. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  if (typeof error === 'string') return error;
  if (
    typeof error === 'object' &&
    error !== null &&
    typeof (error as { message?: unknown }).message === 'string'
  ) {
    return (error as { message: string }).message;
  }
  try {
    return JSON.stringify(error) ?? String(error);
  } catch {
    return String(error);
  }
}

function isDriverResult(value: unknown): value is DriverResult {
  if (typeof value !== 'object' || value === null || typeof (value as DriverResult).success !== 'boolean')
    return false;
  const message = (value as DriverResult).message;
  return message === undefined || message === null || typeof message === 'string';
}

function failure(kind: SettlementKind, message: string, reason = message): Settlement {
  return { kind, result: { success: false, message }, action: 'ack', reason, level: 'warn' };
}

/**
 * The retry a handler asked for, through `RetryableError` or `ctx.retry()`, or (with
 * `retryApiErrors`) an API outage it ran into: a network error or 5xx the client's own retries did
 * not get past says nothing about the step, so it must not fail it for good.
 */
function retryOf(outcome: ReconcileOutcome, state: RunState): RetryRequest | undefined {
  if (outcome.retry) return outcome.retry;
  if (outcome.kind !== 'threw') return undefined;
  if (isRetryableError(outcome.error)) {
    return { delayMs: outcome.error.delayMs, reason: errorMessage(outcome.error) };
  }
  if (state.retryApiErrors && isTransientApiError(outcome.error)) {
    return { reason: `the Conveyor API failed: ${errorMessage(outcome.error)}` };
  }
  return undefined;
}

function decideRetry(retry: RetryRequest, state: RunState): Settlement {
  if (state.alreadyAcked) {
    return failure(
      'gave-up',
      `cannot retry: ackMode 'onReceive' acknowledged the message on receipt: ${retry.reason}`,
    );
  }
  if (state.deliveryCount >= state.maxAttempts) {
    return failure('gave-up', `gave up after ${state.deliveryCount} attempts: ${retry.reason}`);
  }
  const delayMs = retry.delayMs ?? state.retryDelayMs(state.deliveryCount);
  return {
    kind: 'retried',
    action: 'nak',
    delayMs,
    reason: `attempt ${state.deliveryCount} of ${state.maxAttempts} asks for a retry in ${delayMs} ms: ${retry.reason}`,
    level: 'warn',
  };
}

function decideReturned(handler: string, value: unknown): Settlement {
  if (!isDriverResult(value)) {
    return failure(
      'failed',
      `${handler} returned ${value === undefined ? 'nothing' : JSON.stringify(value)?.slice(0, 200)}; ` +
        'a @Reconcile handler must return { success: boolean, message?: string, data?: unknown }',
    );
  }
  const result: DriverResult = { success: value.success, message: value.message ?? '', data: value.data };
  return value.success
    ? { kind: 'succeeded', result, action: 'ack', reason: 'reconciled', level: 'log' }
    : { ...failure('failed', result.message!, `reconcile reported failure: ${result.message}`), result };
}

/**
 * The settlement policy (design.md "Settlement policy"): a pure function, so every row is unit-tested,
 * and the only place the rows are written down. A handler failure is a *result* (the pipeline learns it
 * failed), never a silent redelivery loop; only an explicit retry is redelivered, and only a bounded
 * number of times.
 */
export function decideSettlement(outcome: MessageOutcome, state: RunState): Settlement {
  switch (outcome.kind) {
    case 'undecodable': {
      // A failure result when the run is known: otherwise its pipeline would wait forever (contract G6).
      const known = outcome.runId !== undefined && outcome.resource !== undefined;
      return {
        kind: 'dead-lettered',
        ...(known ? { result: { success: false, message: `undecodable message: ${outcome.reason}` } } : {}),
        action: 'term',
        reason: `undecodable: ${outcome.reason}`,
        deadLetter: true,
        level: 'error',
      };
    }
    case 'no-handler': {
      const reason = `no handler for subject ${outcome.subject} (event "${outcome.event}")`;
      const limit = state.unroutedDeadLetterMs ?? 0;
      if (limit > 0 && (state.messageAgeMs ?? 0) >= limit) {
        // Held this long, nobody will serve it: left alone it would occupy max_ack_pending forever.
        return {
          kind: 'dead-lettered',
          action: 'term',
          reason: `${reason} for ${Math.round(state.messageAgeMs! / 1000)} s`,
          deadLetter: true,
          level: 'error',
        };
      }
      // Not ack or term yet: during a rolling deploy another replica may handle this subject.
      return {
        kind: 'unrouted',
        action: 'nak',
        delayMs: unroutedDelayMs(state.deliveryCount),
        reason,
        level: 'warn',
      };
    }
    case 'filtered':
      return {
        kind: 'filtered',
        action: 'ack',
        reason: outcome.pipelineStep
          ? `${outcome.handler} skips event "${outcome.event}" of a pipeline step: the pipeline will not advance past this step`
          : `${outcome.handler} skips event "${outcome.event}"`,
        // A skipped step stalls its pipeline; a skipped direct event is routine.
        level: outcome.pipelineStep ? 'warn' : 'debug',
      };
    case 'not-started':
      return {
        kind: 'shutdown',
        action: 'nak',
        reason: 'pulled but not started before shutdown',
        level: 'log',
      };
    case 'stale':
      // Reconciling a deleted or replaced resource would act on something that no longer exists.
      return { kind: 'stale', action: 'ack', reason: outcome.reason, level: 'log' };
    case 'cancelled':
      return failure('cancelled', `cancelled: ${outcome.reason}`);
    case 'resource-busy':
      // Not an attempt of its own: nothing ran. Heartbeat-free, since the message goes back to the server.
      return {
        kind: 'waiting',
        action: 'nak',
        delayMs: outcome.delayMs,
        reason: `${outcome.resource} is busy with run ${outcome.holderRunId}: waiting for its turn`,
        level: 'debug',
      };
    case 'invalid-spec':
      // The same spec fails the same way on every delivery: a failure result, never a retry. The
      // violation is in `data` too, for tools that read results.
      return {
        ...failure('failed', outcome.reason, `${outcome.handler} not called: ${outcome.reason}`),
        result: { success: false, message: outcome.reason, data: { specViolation: outcome.violation } },
      };
    case 'lookup-failed':
      // Bounded like any retry: an API that stays down ends in a failure result, not a stalled pipeline.
      return decideRetry({ reason: outcome.reason }, state);
  }
  if (state.shutdownAborted && state.alreadyAcked) {
    // ackMode 'onReceive' acked it on receipt: no replica will rerun it, so the pipeline must hear why.
    return failure('shutdown', 'aborted at the shutdown deadline (ackMode onReceive: not rerun)');
  }
  if (state.shutdownAborted) {
    // No result: the run did not finish here, and a result would advance or fail the pipeline.
    return {
      kind: 'shutdown',
      action: 'nak',
      reason: 'aborted at the shutdown deadline: another replica reruns it',
      level: 'warn',
    };
  }
  if (state.cancelledReason !== undefined) {
    // Cancelled on purpose: the pipeline hears why, and the message is never rerun.
    return failure('cancelled', `cancelled: ${state.cancelledReason}`);
  }
  if (state.timedOutAfterMs !== undefined) {
    return failure('timed-out', `timed out after ${state.timedOutAfterMs} ms`);
  }
  if (outcome.kind === 'threw' && isDriverResult(outcome.recovered)) {
    // An exception filter mapped the error to a result on purpose: it wins over the error and retries.
    return decideReturned(outcome.handler, outcome.recovered);
  }
  const retry = retryOf(outcome, state);
  if (retry) return decideRetry(retry, state);
  if (outcome.kind === 'threw') {
    const message = errorMessage(outcome.error);
    return failure('failed', message, `handler failed: ${message}`);
  }
  return decideReturned(outcome.handler, outcome.value);
}

/** The result could not be JSON-encoded (a cycle, a BigInt, a throwing toJSON): report that instead. */
export function unencodableResult(error: unknown): Settlement {
  return failure('failed', `result data is not JSON-encodable: ${errorMessage(error)}`);
}

/** The result is larger than the server accepts: a failure result that fits takes its place. */
export function oversizeResult(bytes: number, maxPayload: number): Settlement {
  return failure(
    'failed',
    `result is ${bytes} bytes, above the server's max_payload of ${maxPayload} bytes: data dropped`,
  );
}

/** The server refused the result for its size (a stream limit): a small failure result takes its place. */
export function refusedResult(reason: string): Settlement {
  return failure('failed', `result refused by the server (${reason}): data dropped`);
}

/** Not even a failure result can be stored for this message: keep the evidence, then stop redelivery. */
export function unpublishableResult(reason: string): Settlement {
  return {
    kind: 'dead-lettered',
    action: 'term',
    reason: `no result can be stored: ${reason}`,
    deadLetter: true,
    level: 'error',
  };
}

/** Something failed outside the handler (a bug, a hook): a failure result rather than an unsettled message. */
export function internalFailure(error: unknown): Settlement {
  const message = `internal error while settling: ${errorMessage(error)}`;
  return { ...failure('failed', message), level: 'error' };
}
