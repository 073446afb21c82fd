import type { DriverResult } from '../protocol';

/** How a dispatch ended, as seen by the transport. */
export type ReconcileOutcome =
  /** The handler's pipeline completed with this value (after interceptors and filters). */
  | { kind: 'returned'; value: unknown; handler: string }
  /** The handler, a pipe, a guard or an interceptor threw this (the original value when we saw it). */
  | { kind: 'threw'; error: unknown; handler: string };

/** What to do with a message: an optional result to publish first, then one final verb. */
export interface Settlement {
  result?: DriverResult;
  action: 'ack' | 'nak' | 'term';
  delayMs?: number;
  /** Why, for logs and term reasons. */
  reason: string;
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

/** What the transport knows about the run beyond the handler's outcome. */
export interface RunState {
  /** Set when `reconcileTimeoutMs` elapsed and the run was aborted. */
  timedOutAfterMs?: number;
  /** The shutdown deadline aborted the run: another replica must rerun it. */
  shutdownAborted?: boolean;
}

function isDriverResult(value: unknown): value is DriverResult {
  if (typeof value !== 'object' || value === null || typeof (value as DriverResult).success !== 'boolean')
    return false;
  const message = (value as DriverResult).message;
  return message === undefined || message === null || typeof message === 'string';
}

/**
 * The settlement policy (design.md "Settlement policy"): a pure function, so every row is unit-tested.
 * A handler failure is a *result* (the pipeline learns it failed), never a silent redelivery loop.
 */
export function decideSettlement(outcome: ReconcileOutcome, state: RunState = {}): Settlement {
  if (state.shutdownAborted) {
    // No result: the run did not finish here, and a result would advance or fail the pipeline.
    return { action: 'nak', reason: 'aborted at the shutdown deadline: another replica reruns it' };
  }
  if (state.timedOutAfterMs !== undefined) {
    const message = `timed out after ${state.timedOutAfterMs} ms`;
    return { result: { success: false, message }, action: 'ack', reason: message };
  }
  if (outcome.kind === 'threw') {
    const message = errorMessage(outcome.error);
    return { result: { success: false, message }, action: 'ack', reason: `handler failed: ${message}` };
  }
  const { value } = outcome;
  if (!isDriverResult(value)) {
    const message =
      `${outcome.handler} returned ${value === undefined ? 'nothing' : JSON.stringify(value)?.slice(0, 200)}; ` +
      'a @Reconcile handler must return { success: boolean, message?: string, data?: unknown }';
    return { result: { success: false, message }, action: 'ack', reason: message };
  }
  const result: DriverResult = { success: value.success, message: value.message ?? '', data: value.data };
  return {
    result,
    action: 'ack',
    reason: value.success ? 'reconciled' : `reconcile reported failure: ${result.message}`,
  };
}
