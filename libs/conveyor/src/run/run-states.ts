/**
 * The life of one pulled message, as a table. A message is owned by one {@link MessageRun} from the
 * moment it arrives until its final verb; these are the only states it can be in:
 *
 * | state                 | what is going on                                                        |
 * |-----------------------|-------------------------------------------------------------------------|
 * | `received`            | decoding and routing (synchronous, no slot held)                        |
 * | `waiting-for-handler` | its handler's own `concurrency` is used up (no instance slot held)      |
 * | `waiting-for-slot`    | waiting for one of the instance's `concurrency` run slots               |
 * | `running`             | the resource lease (`perResource`), the stale-event check and the handler, through Nest's pipeline |
 * | `waiting-for-lease`   | another run holds the resource's lease: no slot held, the message held and heartbeated (no attempt spent) |
 * | `reporting`           | a decision exists: dead-letter record, log flush, result encoding; nothing is stored yet |
 * | `publishing`          | the result was sent: it may be stored, so no rerun elsewhere (no shutdown nak) |
 * | `settled`             | the final verb was sent (or deliberately withheld); nothing more happens |
 *
 * A (state, event) pair the table does not list is impossible: {@link nextRunState} throws
 * ({@link IllegalRunTransition}), which the run's recovery turns into a decision and a verb. `stay`
 * marks events that change nothing there (a shutdown while a handler runs). `error` leads every live
 * state to a decision, so no exception can leave a message without a verb.
 */
export const RUN_STATES = [
  'received',
  'waiting-for-handler',
  'waiting-for-slot',
  'running',
  'waiting-for-lease',
  'reporting',
  'publishing',
  'settled',
] as const;
export type RunStateName = (typeof RUN_STATES)[number];

/** What can happen to a run. */
export const RUN_EVENTS = [
  /** Decoded and routed to a handler. */
  'routed',
  /** Ends without a handler run: undecodable, no handler, filtered out, cancelled or shut down while waiting. */
  'decided',
  'handler-slot-taken',
  'run-slot-taken',
  /** Another run holds the resource's lease: the slots are given back while it waits. */
  'lease-busy',
  /** The lease may have freed (released, expired): take the slots again, then the lease. */
  'lease-may-be-free',
  /** The handler (or the stale-event check) produced an outcome, or its timeout did. */
  'handler-finished',
  /** The result publish went out on the connection. */
  'result-sent',
  /** The result cannot be stored as it is (too big, no stream, no permission): decide again. */
  'result-refused',
  /** ack / nak / term was sent. */
  'verb-sent',
  /** Anything threw. */
  'error',
] as const;
export type RunEvent = (typeof RUN_EVENTS)[number];

export type Transition = RunStateName | 'stay';

type Table = Record<RunStateName, Partial<Record<RunEvent, Transition>>>;

/** A waiting run ends in a decision when a cancel or shutdown ends its wait (or anything throws). */
const waiting = { decided: 'reporting', error: 'reporting' } as const;

/** The transition table; `run-states.spec.ts` walks every cell. */
export const RUN_TRANSITIONS: Table = {
  received: { routed: 'waiting-for-handler', ...waiting },
  'waiting-for-handler': { 'handler-slot-taken': 'waiting-for-slot', ...waiting },
  'waiting-for-slot': { 'run-slot-taken': 'running', ...waiting },
  // Admission ends here too: a lease taken, busy, or not to be had (a cancel, a failed lookup).
  running: { 'lease-busy': 'waiting-for-lease', 'handler-finished': 'reporting', ...waiting },
  'waiting-for-lease': { 'lease-may-be-free': 'waiting-for-handler', ...waiting },
  reporting: {
    'result-sent': 'publishing',
    'verb-sent': 'settled',
    // Re-decided in place: a refused or unencodable result becomes a failure result, then a verb.
    'result-refused': 'reporting',
    error: 'reporting',
  },
  // Once sent, a result may be stored: neither a shutdown nor the deadline may nak it (another
  // replica would publish a second result, beyond the 2-minute de-duplication window for long
  // builds). A transient publish error is retried here.
  publishing: { 'result-sent': 'stay', 'verb-sent': 'settled', 'result-refused': 'reporting', error: 'stay' },
  settled: { error: 'stay' },
};

/** An event the run's state cannot have: a bug in the run's owner, never bad input. */
export class IllegalRunTransition extends Error {
  constructor(
    readonly state: RunStateName,
    readonly event: RunEvent,
  ) {
    super(`illegal run transition: ${event} in state ${state}`);
    this.name = 'IllegalRunTransition';
  }
}

/** Where `event` takes a run in `state` (`stay` keeps it there). @throws IllegalRunTransition */
export function nextRunState(state: RunStateName, event: RunEvent): RunStateName {
  const next = RUN_TRANSITIONS[state][event];
  if (next === undefined) throw new IllegalRunTransition(state, event);
  return next === 'stay' ? state : next;
}
