import type { ArgumentsHost } from '@nestjs/common';
import { BaseRpcContext } from '@nestjs/microservices';
import type { Resource } from '../protocol';
import type { RunLogger } from '../logger/run-logger';
import { validRetryDelay } from '../settlement/retryable.error';
import type { RetryRequest } from '../settlement/settlement.policy';
import { markReported } from './handler-error-log';
import type { CleanupHook, CleanupOptions } from '../run-control/run-cleanup';
import type { ProgressValue } from '../run-control/run-progress';
import type { RunControls } from '../run-control/run-controls';

/** Fields of a {@link ReconcileContext}. */
export interface ReconcileContextInit {
  event: string;
  runId: string;
  messageId: string;
  subject: string;
  resourceType: string;
  deliveryCount: number;
  maxAttempts: number;
  streamSequence: number;
  driverName: string;
  payload: string;
  resource: Resource;
  signal: AbortSignal;
  logger: RunLogger;
  /** Cleanup hooks and progress of the run (without them, `onCleanup` and `progress` do nothing). */
  controls?: RunControls;
}

/**
 * Everything a handler knows about the message it reconciles; inject it with `@Ctx()`.
 * At-least-once delivery means a handler can run again for the same message (after a crash or a
 * shutdown abort): `deliveryCount > 1` tells it so.
 */
export class ReconcileContext extends BaseRpcContext<[string]> {
  /** Event of the message: `create`, `process` (later pipeline steps), upstream also `update`/`delete`. */
  readonly event: string;
  /** Run id, shared by every step of a pipeline run. */
  readonly runId: string;
  /** Message id (24 hex chars), new per dispatched message. */
  readonly messageId: string;
  /** Subject the message arrived on: `resources.{r}` or `drivers.{driver}.resources.{r}`. */
  readonly subject: string;
  /** Resource-definition name, e.g. `pipeline`. */
  readonly resourceType: string;
  /** 1 on first delivery. */
  readonly deliveryCount: number;
  /** Deliveries a retryable failure may use; on the last one a retry becomes a failure result. */
  readonly maxAttempts: number;
  /** Sequence of the message in the `messages` stream. */
  readonly streamSequence: number;
  readonly driverName: string;
  /** The resource as the JSON string the server sent (Go `Reconcile(payload, …)` parity). */
  readonly payload: string;
  /** A private copy of the decoded resource (the same object `@Payload()` gives). */
  readonly resource: Resource;
  /**
   * Aborted when the run must stop: its timeout, a cancel (`RunControl.cancel`; the reason is a
   * `RunCancelledError`), or the shutdown deadline. Pass it to child processes and fetches.
   */
  readonly signal: AbortSignal;
  /** Logger bound to this run. */
  readonly logger: RunLogger;

  constructor(init: ReconcileContextInit) {
    super([init.subject]);
    this.event = init.event;
    this.runId = init.runId;
    this.messageId = init.messageId;
    this.subject = init.subject;
    this.resourceType = init.resourceType;
    this.deliveryCount = init.deliveryCount;
    this.maxAttempts = init.maxAttempts;
    this.streamSequence = init.streamSequence;
    this.driverName = init.driverName;
    this.payload = init.payload;
    this.resource = init.resource;
    this.signal = init.signal;
    this.logger = init.logger;
    this.controls = init.controls;
  }

  private readonly controls?: ReconcileContextInit['controls'];

  /**
   * Runs `fn` once when this run ends, however it ends (success, failure, timeout, cancel, the
   * shutdown deadline), before the message's final verb, last registered first. Each hook has its own
   * deadline (`options.timeoutMs`, default `cleanupTimeoutMs`); a failing hook is logged and counted
   * and never changes the result.
   */
  onCleanup(fn: CleanupHook, options?: CleanupOptions): void {
    this.controls?.onCleanup(fn, options);
  }

  /**
   * Reports how far the run is: a fraction (0..1) or `{ done, total }`, and an optional phase (keep
   * phases few: they are a metric label). Published at most every 500 ms (the latest wins) on
   * `conveyor-run.progress.{runId}.{driver}`; `RunControl.watchProgress(runId)` reads it.
   */
  progress(value: ProgressValue, phase?: string): void {
    this.controls?.progress(value, phase);
  }

  /** True when a retry would give up: this delivery is the last attempt. */
  get isLastAttempt(): boolean {
    return this.deliveryCount >= this.maxAttempts;
  }

  /**
   * Asks for this message again later instead of publishing a result, like throwing a
   * `RetryableError`: the message is nak'd after the handler settles (its return value is then
   * ignored) with `delayMs` or, when omitted, the backoff curve's delay for this delivery. On the
   * last attempt the run gives up with a failure result carrying `reason`.
   */
  retry(delayMs?: number, reason = 'retry requested by the handler'): void {
    const delay = delayMs === undefined ? undefined : validRetryDelay(delayMs, 'ctx.retry');
    retries.set(this, { delayMs: delay, reason });
  }

  /** True on a pipeline step (`drivers.{driver}.resources.{r}`), false on a direct resource event. */
  get isPipelineStep(): boolean {
    return this.subject.startsWith('drivers.');
  }
}

/**
 * True when a guard, interceptor, pipe or filter runs for a Conveyor reconcile. Nest's `getType()`
 * is just `'rpc'` for every transport, so global HTTP enhancers must check this to stay out of the way.
 */
export function isConveyorContext(host: ArgumentsHost): boolean {
  return host.getType() === 'rpc' && host.switchToRpc().getContext() instanceof ReconcileContext;
}

const thrown = new WeakMap<ReconcileContext, { error: unknown }>();

/** Records what the handler (or a pipe) threw, before Nest's exception layer replaces it. */
export function recordThrown(ctx: ReconcileContext, error: unknown): void {
  if (thrown.has(ctx)) return;
  thrown.set(ctx, { error });
  markReported(error);
}

/** What the handler threw, if anything. */
export function thrownBy(ctx: ReconcileContext): { error: unknown } | undefined {
  return thrown.get(ctx);
}

const retries = new WeakMap<ReconcileContext, RetryRequest>();

/** What `ctx.retry()` asked for: the settlement policy's type, which reads it (settlement sits below reconcile). */
export type { RetryRequest };

/** The retry the handler asked for through `ctx.retry()`, if any. */
export function retryRequestedBy(ctx: ReconcileContext): RetryRequest | undefined {
  return retries.get(ctx);
}
