import { SetMetadata, applyDecorators } from '@nestjs/common';
import { EventPattern } from '@nestjs/microservices';
import { assertSubjectToken } from '../protocol';
import { CONVEYOR_TRANSPORT, RECONCILE_EXTRAS, RECONCILE_METADATA } from './reconcile.constants';
import { recordingErrorsOf } from './reconcile-errors';
import { OptionFields, milliseconds, readOptions, wholeNumber } from '../module/option-schema';
import { type SpecValidator, specValidatorProblem } from '../resources/spec-validator';

/** Options of {@link Reconcile}. */
export interface ReconcileOptions {
  /** Resource-definition name this handler reconciles, e.g. `pipeline` (a NATS subject token). */
  resource: string;
  /**
   * Only these events reach the handler (`create`, `process`, and upstream `update`/`delete`).
   * Default: every event, because Conveyor sends more than it documents (contract §16).
   */
  events?: string[];
  /**
   * Runs of this handler in flight at once in this instance, within the module's `concurrency`.
   * A message waiting for a slot here holds no instance slot (it is heartbeated meanwhile). Default: no own limit.
   */
  concurrency?: number;
  /** This handler's run ceiling in ms (0 = none), instead of the module's `reconcileTimeoutMs`. */
  timeoutMs?: number;
  /** This handler's `maxAttempts` for retryable failures, instead of the module's. */
  maxAttempts?: number;
  /**
   * One run per resource (type + name) at a time, across every replica of the driver, through
   * leases in the `conveyor-run-leases` KV bucket. `serialize`: a second event waits (nak'd with a
   * short delay, not counted as an attempt) until the first finishes. `supersede`: the newer event
   * cancels the older run in flight (its result says `cancelled: superseded by run …`), then runs.
   * Default: off.
   */
  perResource?: PerResourcePolicy;
  /**
   * The validator `conveyor-nestjs generate` wrote for the resource's definition
   * (`PipelineSpecValidator`). The payload's `spec` is checked before the handler runs: one that
   * does not match ends the run with a failure result naming the path and the rule (counted in
   * `conveyor_spec_rejections_total`), and the handler receives only resources that match, so it
   * can take `Resource<PipelineSpec>`. At startup the generated version is compared with the
   * server's (`resourceDrift`). Default: none (the handler gets `spec` unchecked).
   */
  spec?: SpecValidator;
}

/** See {@link ReconcileOptions.perResource}. */
export type PerResourcePolicy = 'serialize' | 'supersede';

/** What the transport knows about one handler. */
export interface ReconcileHandlerMeta {
  resource: string;
  events?: readonly string[];
  concurrency?: number;
  timeoutMs?: number;
  maxAttempts?: number;
  perResource?: PerResourcePolicy;
  /** Checks the payload's `spec` before the handler runs. */
  spec?: SpecValidator;
  /** `Class.method`, for error messages. */
  handler: string;
}

/**
 * Marks a controller method as the reconciler of a Conveyor resource. The method receives the
 * Resource (`@Payload()`) and a {@link ReconcileContext} (`@Ctx()`) and returns a `DriverResult`.
 * Guards, pipes, interceptors and filters apply as to any Nest microservice handler; a thrown error
 * becomes a failure result carrying the original message.
 *
 * Handlers must live in a module's `controllers` (Nest only scans controllers for patterns).
 * @example
 * ```ts
 * @Reconcile({ resource: 'pipeline' })
 * run(@Payload() resource: Resource<Spec>, @Ctx() ctx: ReconcileContext): Promise<DriverResult> { … }
 *
 * // with types and a validator generated from the server's definition (`conveyor-nestjs generate`)
 * @Reconcile({ resource: 'pipeline', spec: PipelineSpecValidator })
 * run(@Payload() resource: PipelineResource, @Ctx() ctx: ReconcileContext): Promise<DriverResult> { … }
 * ```
 */
export function Reconcile(options: ReconcileOptions): MethodDecorator {
  const resource = assertSubjectToken('@Reconcile resource', options?.resource);
  if (
    options.events !== undefined &&
    (!Array.isArray(options.events) || options.events.some((e) => typeof e !== 'string' || !e))
  ) {
    throw new TypeError(
      `@Reconcile({ resource: '${resource}' }): "events" must be an array of non-empty strings`,
    );
  }
  const events = options.events ? [...new Set(options.events)] : undefined;
  if (options.perResource !== undefined && !['serialize', 'supersede'].includes(options.perResource)) {
    throw new TypeError(
      `@Reconcile({ resource: '${resource}' }): "perResource" must be 'serialize' or 'supersede'`,
    );
  }
  if (options.spec !== undefined) {
    const problem = specValidatorProblem(options.spec);
    if (problem) throw new TypeError(`@Reconcile({ resource: '${resource}' }): "spec" ${problem}`);
    if (options.spec.definition !== resource) {
      throw new TypeError(
        `@Reconcile({ resource: '${resource}' }): "spec" validates resource definition "${options.spec.definition}", not "${resource}"`,
      );
    }
  }
  return (target, key, descriptor: PropertyDescriptor) => {
    const handler = `${target.constructor.name}.${String(key)}`;
    // Checked as the class is declared, before anything runs: a 30-day timeoutMs would otherwise
    // pass and end every run at once (Node fires timers past 2^31-1 ms straight away).
    const limits = readLimits(`@Reconcile({ resource: '${resource}' }) on ${handler}`, options);
    if (typeof descriptor.value === 'function') descriptor.value = recordingErrorsOf(descriptor.value);
    const meta: ReconcileHandlerMeta = {
      resource,
      events,
      ...limits,
      ...(options.perResource ? { perResource: options.perResource } : {}),
      ...(options.spec ? { spec: options.spec } : {}),
      handler,
    };
    // The pattern is unique per method: Nest chains event handlers that share a pattern, and we
    // want overlaps reported as an error instead (see ReconcileHandlerRegistry).
    applyDecorators(
      SetMetadata(RECONCILE_METADATA, meta),
      EventPattern(`conveyor.reconcile.${resource}.${meta.handler}`, CONVEYOR_TRANSPORT, {
        [RECONCILE_EXTRAS]: meta,
      }),
    )(target, key, descriptor);
  };
}

type Limits = Pick<ReconcileHandlerMeta, 'concurrency' | 'timeoutMs' | 'maxAttempts'>;

const LIMITS: OptionFields<Limits> = {
  concurrency: { parse: wholeNumber(1) },
  timeoutMs: { parse: milliseconds(0) },
  maxAttempts: { parse: wholeNumber(1) },
};

/** The other options, checked above: a record so the compiler keeps it in step with ReconcileOptions. */
const CHECKED_ABOVE: Record<Exclude<keyof ReconcileOptions, keyof Limits>, true> = {
  resource: true,
  events: true,
  perResource: true,
  spec: true,
};

/**
 * The handler's own limits, read by the module options' schema (and its other keys checked for
 * typos). No env: one app may have many handlers. @throws TypeError naming `where` and every problem.
 */
function readLimits(where: string, options: ReconcileOptions): Limits {
  const problems: string[] = [];
  const { values } = readOptions('', options, LIMITS, {}, problems, Object.keys(CHECKED_ABOVE));
  if (problems.length > 0) throw new TypeError(`${where}: ${problems.join('; ')}`);
  return values;
}
