import { BadRequestException } from '@nestjs/common';
import { RpcException } from '@nestjs/microservices';
import { ConveyorApiError } from '../client/conveyor-api.error';
import { RetryableError } from './retryable.error';
import {
  MessageOutcome,
  RunState,
  Settlement,
  UNROUTED_NAK_DELAY_MS,
  UNROUTED_NAK_MAX_DELAY_MS,
  decideSettlement,
  errorMessage,
} from './settlement.policy';

const handler = 'Driver.run';
/** A curve that makes the delay visible: 1000 ms × delivery count. */
const state = (extra: Partial<RunState> = {}): RunState => ({
  deliveryCount: 1,
  maxAttempts: 3,
  retryDelayMs: (n) => n * 1000,
  ...extra,
});
const returned = (value: unknown, extra = {}): MessageOutcome => ({
  kind: 'returned',
  handler,
  value,
  ...extra,
});
const threw = (error: unknown, extra = {}): MessageOutcome => ({ kind: 'threw', handler, error, ...extra });
const resource = { name: 'w', resource: 'widget', spec: {} };

/** Every row of design.md's settlement table, as (name, outcome, state, expected settlement). */
const TABLE: [string, MessageOutcome, RunState, Partial<Settlement>][] = [
  [
    'handler returns a result',
    returned({ success: true, message: 'ok', data: { n: 1 } }),
    state(),
    { kind: 'succeeded', result: { success: true, message: 'ok', data: { n: 1 } }, action: 'ack' },
  ],
  [
    'handler reports a failure',
    returned({ success: false }),
    state(),
    { kind: 'failed', result: { success: false, message: '', data: undefined }, action: 'ack' },
  ],
  [
    'handler throws',
    threw(new Error('disk full')),
    state(),
    { kind: 'failed', result: { success: false, message: 'disk full' }, action: 'ack' },
  ],
  [
    'guard denies (Nest delivers its RPC error payload)',
    threw({ status: 'error', message: 'Forbidden resource' }),
    state(),
    { kind: 'failed', result: { success: false, message: 'Forbidden resource' }, action: 'ack' },
  ],
  [
    'pipe fails',
    threw(new BadRequestException('spec.steps must be an array')),
    state(),
    { kind: 'failed', result: { success: false, message: 'spec.steps must be an array' }, action: 'ack' },
  ],
  [
    'filter returns a DriverResult for the error',
    threw(new Error('raw'), { recovered: { success: false, message: 'mapped by filter' } }),
    state(),
    {
      kind: 'failed',
      result: { success: false, message: 'mapped by filter', data: undefined },
      action: 'ack',
    },
  ],
  [
    'filter returns a value that is not a DriverResult',
    threw(new Error('raw'), { recovered: { statusCode: 500 } }),
    state(),
    { kind: 'failed', result: { success: false, message: 'raw' }, action: 'ack' },
  ],
  [
    'filter maps a retryable error to a result (the filter wins)',
    threw(new RetryableError('busy'), { recovered: { success: true, message: 'fine' } }),
    state(),
    { kind: 'succeeded', action: 'ack', result: { success: true, message: 'fine', data: undefined } },
  ],
  [
    'RetryableError with attempts left',
    threw(new RetryableError('registry 503')),
    state({ deliveryCount: 2 }),
    { kind: 'retried', action: 'nak', delayMs: 2000, result: undefined },
  ],
  [
    'RetryableError with its own delay',
    threw(new RetryableError('rate limited', { delayMs: 750 })),
    state(),
    { kind: 'retried', action: 'nak', delayMs: 750 },
  ],
  [
    'ctx.retry() with attempts left (return value ignored)',
    returned({ success: true }, { retry: { reason: 'node draining' } }),
    state(),
    { kind: 'retried', action: 'nak', delayMs: 1000, result: undefined },
  ],
  [
    'ctx.retry(ms) wins over a thrown error',
    threw(new Error('x'), { retry: { delayMs: 0, reason: 'asked' } }),
    state(),
    { kind: 'retried', action: 'nak', delayMs: 0 },
  ],
  [
    'retryable at the last attempt',
    threw(new RetryableError('registry 503')),
    state({ deliveryCount: 3 }),
    {
      kind: 'gave-up',
      action: 'ack',
      result: { success: false, message: 'gave up after 3 attempts: registry 503' },
    },
  ],
  [
    'retryable past the last attempt (maxAttempts lowered meanwhile)',
    returned(undefined, { retry: { reason: 'again' } }),
    state({ deliveryCount: 5 }),
    {
      kind: 'gave-up',
      action: 'ack',
      result: { success: false, message: 'gave up after 5 attempts: again' },
    },
  ],
  [
    'retryable in ackMode onReceive (already acked: a nak would lose it silently)',
    threw(new RetryableError('busy')),
    state({ alreadyAcked: true }),
    {
      kind: 'gave-up',
      action: 'ack',
      result: {
        success: false,
        message: "cannot retry: ackMode 'onReceive' acknowledged the message on receipt: busy",
      },
    },
  ],
  [
    'reconcile timeout exceeded (even when it asked for a retry)',
    threw(new Error('AbortError'), { retry: { reason: 'r' } }),
    state({ timedOutAfterMs: 250 }),
    { kind: 'timed-out', action: 'ack', result: { success: false, message: 'timed out after 250 ms' } },
  ],
  [
    'run finishes before the shutdown deadline',
    returned({ success: true, message: 'done' }),
    state(),
    { kind: 'succeeded', action: 'ack' },
  ],
  [
    'shutdown deadline aborted the run (even if it also timed out)',
    threw(new Error('aborted')),
    state({ shutdownAborted: true, timedOutAfterMs: 10 }),
    { kind: 'shutdown', action: 'nak', result: undefined, delayMs: undefined },
  ],
  [
    'pulled but not started at shutdown',
    { kind: 'not-started' },
    state(),
    { kind: 'shutdown', action: 'nak', result: undefined, delayMs: undefined },
  ],
  [
    'event filtered out on a pipeline step (warns: the pipeline stalls)',
    { kind: 'filtered', handler, event: 'delete', pipelineStep: true },
    state(),
    { kind: 'filtered', action: 'ack', result: undefined, level: 'warn' },
  ],
  [
    'event filtered out on a direct resource event',
    { kind: 'filtered', handler, event: 'delete', pipelineStep: false },
    state(),
    { kind: 'filtered', action: 'ack', result: undefined, level: 'debug' },
  ],
  [
    'no handler for the subject (rolling deploy): nak, first after the base delay',
    { kind: 'no-handler', subject: 'resources.other', event: 'create' },
    state({ messageAgeMs: 1000, unroutedDeadLetterMs: 3_600_000 }),
    { kind: 'unrouted', action: 'nak', delayMs: UNROUTED_NAK_DELAY_MS, result: undefined },
  ],
  [
    'no handler, delivered again past the rolling-deploy deliveries: the delay doubles per delivery',
    { kind: 'no-handler', subject: 'resources.other', event: 'create' },
    state({ deliveryCount: 12, messageAgeMs: 60_000, unroutedDeadLetterMs: 3_600_000 }),
    { kind: 'unrouted', action: 'nak', delayMs: 4 * UNROUTED_NAK_DELAY_MS, result: undefined },
  ],
  [
    'no handler, even at a high delivery count: nak, the delay capped',
    { kind: 'no-handler', subject: 'resources.other', event: 'create' },
    state({ deliveryCount: 99, messageAgeMs: 60_000, unroutedDeadLetterMs: 0 }),
    { kind: 'unrouted', action: 'nak', delayMs: UNROUTED_NAK_MAX_DELAY_MS, result: undefined },
  ],
  [
    'no handler for longer than the bound: dead-lettered, never a result',
    { kind: 'no-handler', subject: 'resources.retired', event: 'create' },
    state({ deliveryCount: 12, messageAgeMs: 3_600_000, unroutedDeadLetterMs: 3_600_000 }),
    { kind: 'dead-lettered', action: 'term', deadLetter: true, result: undefined },
  ],
  [
    'ackMode onReceive, aborted at the shutdown deadline: a failure result (nobody reruns it)',
    { kind: 'threw', error: new Error('shutdown deadline reached'), handler },
    state({ alreadyAcked: true, shutdownAborted: true }),
    {
      kind: 'shutdown',
      action: 'ack',
      result: { success: false, message: expect.stringContaining('shutdown deadline') },
    },
  ],
  [
    'stale-event guard: resource deleted or replaced since the event',
    { kind: 'stale', reason: 'pipeline "p" was deleted since the event: step skipped' },
    state(),
    { kind: 'stale', action: 'ack', result: undefined },
  ],
  [
    'stale-event guard: API unreachable',
    { kind: 'lookup-failed', reason: 'GET /resources/pipeline/p -> 0' },
    state({ deliveryCount: 2 }),
    { kind: 'retried', action: 'nak', delayMs: 2000, result: undefined },
  ],
  [
    'stale-event guard: API still unreachable at the last attempt',
    { kind: 'lookup-failed', reason: 'stale-event check failed: GET /resources/pipeline/p -> ECONNREFUSED' },
    state({ deliveryCount: 3 }),
    {
      kind: 'gave-up',
      action: 'ack',
      result: {
        success: false,
        message:
          'gave up after 3 attempts: stale-event check failed: GET /resources/pipeline/p -> ECONNREFUSED',
      },
    },
  ],
  [
    'handler throws an API outage (retryApiErrors)',
    threw(new ConveyorApiError(503, 'busy', 'GET', '/resources/t/n')),
    state({ retryApiErrors: true }),
    { kind: 'retried', action: 'nak', delayMs: 1000, result: undefined },
  ],
  [
    'handler throws an API outage, retryApiErrors off',
    threw(new ConveyorApiError(503, 'busy', 'GET', '/resources/t/n')),
    state({ retryApiErrors: false }),
    { kind: 'failed', action: 'ack', result: { success: false, message: 'GET /resources/t/n -> 503: busy' } },
  ],
  [
    'handler throws a deterministic API error (retryApiErrors)',
    threw(new ConveyorApiError(400, 'Invalid request payload', 'POST', '/resources/')),
    state({ retryApiErrors: true }),
    { kind: 'failed', action: 'ack' },
  ],
  [
    'undecodable, run unknown',
    { kind: 'undecodable', reason: 'message is not valid JSON' },
    state(),
    { kind: 'dead-lettered', action: 'term', deadLetter: true, result: undefined },
  ],
  [
    'undecodable, run id and resource known',
    { kind: 'undecodable', reason: 'message "id" is missing', runId: 'r1', resource },
    state(),
    {
      kind: 'dead-lettered',
      action: 'term',
      deadLetter: true,
      result: { success: false, message: 'undecodable message: message "id" is missing' },
    },
  ],
];

describe('decideSettlement: the settlement table', () => {
  it.each(TABLE)('%s', (_row, outcome, runState, expected) => {
    const settlement = decideSettlement(outcome, runState);
    for (const [key, value] of Object.entries(expected)) {
      expect([key, settlement[key as keyof Settlement]]).toEqual([key, value]);
    }
    expect(settlement.reason).toEqual(expect.any(String));
    // A nak'd message is never answered: a result would advance or fail the pipeline twice.
    if (settlement.action === 'nak') expect(settlement.result).toBeUndefined();
    if (settlement.action === 'term') expect(settlement.deadLetter).toBe(true);
  });

  it('never terminates or acks a message without a handler before its bound, whatever else the state says', () => {
    for (const extra of [{}, { alreadyAcked: true }, { timedOutAfterMs: 1 }, { deliveryCount: 3 }]) {
      expect(decideSettlement({ kind: 'no-handler', subject: 's', event: 'e' }, state(extra)).action).toBe(
        'nak',
      );
    }
  });

  it.each([
    [undefined, 'Driver.run returned nothing'],
    [{ ok: true }, 'Driver.run returned {"ok":true}'],
    [{ success: 'yes' }, 'Driver.run returned {"success":"yes"}'],
    [{ success: true, message: 5 }, 'Driver.run returned {"success":true,"message":5}'],
  ])('reports a non-DriverResult return value %j as a failure', (value, start) => {
    const settlement = decideSettlement(returned(value), state());
    expect(settlement.action).toBe('ack');
    expect(settlement.result?.success).toBe(false);
    expect(settlement.result?.message).toMatch(
      new RegExp(`^${start.replace(/[{}()]/g, '\\$&')}; a @Reconcile handler must return`),
    );
  });

  it('asks the backoff curve with the delivery count that failed', () => {
    const seen: number[] = [];
    for (const deliveryCount of [1, 2, 3, 4]) {
      decideSettlement(
        threw(new RetryableError('x')),
        state({ deliveryCount, maxAttempts: 5, retryDelayMs: (n) => (seen.push(n), 0) }),
      );
    }
    expect(seen).toEqual([1, 2, 3, 4]);
  });
});

describe('errorMessage', () => {
  it.each([
    [new Error('boom'), 'boom'],
    [new TypeError(''), 'TypeError'],
    ['plain string', 'plain string'],
    [{ status: 'error', message: 'Forbidden resource' }, 'Forbidden resource'],
    [new RpcException('rpc says no'), 'rpc says no'],
    [42, '42'],
    [undefined, 'undefined'],
  ])('reads %p as %p', (error, message) => {
    expect(errorMessage(error)).toBe(message);
  });
});
