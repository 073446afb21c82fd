/**
 * The life of one pulled message, as a table. A message is owned by one {@link MessageRun} from the
 * moment it arrives until its final verb; these are the only states it can be in:
 *
 * | state                 | what is going on                                                        |
 * |-----------------------|-------------------------------------------------------------------------|
 * | `received`            | decoding and routing (synchronous, no slot held)                        |
 * | `waiting-for-handler` | its handler's own `concurrency` is used up (no instance slot held)      |
 * | `waiting-for-slot`    | waiting for one of the instance's `concurrency` run slots               |
 * | `running`             | stale-event check and the handler, through Nest's pipeline              |
 * | `reporting`           | a decision exists: dead-letter record, log flush, result encoding; nothing is stored yet |
 * | `publishing`          | the result was sent: it may be stored, so no rerun elsewhere (no shutdown nak) |
 * | `settled`             | the final verb was sent (or deliberately withheld); nothing more happens |
 *
 * Every (state, event) pair has an answer: a next state, or `stay` (the event changes nothing
 * here, e.g. a shutdown while a run finishes). `error` leads every live state to a decision, so no
 * exception can leave a message without a verb.
 */
export const RUN_STATES = [
  'received',
  'waiting-for-handler',
  'waiting-for-slot',
  'running',
  'reporting',
  'publishing',
  'settled',
] as const;
export type RunStateName = (typeof RUN_STATES)[number];

/** What can happen to a run. */
export const RUN_EVENTS = [
  /** Decoded and routed to a handler. */
  'routed',
  /** Ends without a handler run: undecodable, no handler, filtered out. */
  'decided',
  'handler-slot-taken',
  'run-slot-taken',
  /** The handler (or the stale-event check) produced an outcome, or its timeout did. */
  'handler-finished',
  /** The result publish went out on the connection. */
  'result-sent',
  /** The result cannot be stored as it is (too big, no stream, no permission): decide again. */
  'result-refused',
  /** ack / nak / term was sent. */
  'verb-sent',
  /** Shutdown began: stop waiting for slots. */
  'shutdown',
  /** The shutdown deadline: abort the handler; nak what cannot have a stored result. */
  'deadline',
  /** Anything threw. */
  'error',
] as const;
export type RunEvent = (typeof RUN_EVENTS)[number];

export type Transition = RunStateName | 'stay';

type Table = Record<RunStateName, Record<RunEvent, Transition>>;

const live = (overrides: Partial<Record<RunEvent, Transition>>): Record<RunEvent, Transition> => ({
  routed: 'stay',
  decided: 'stay',
  'handler-slot-taken': 'stay',
  'run-slot-taken': 'stay',
  'handler-finished': 'stay',
  'result-sent': 'stay',
  'result-refused': 'stay',
  'verb-sent': 'stay',
  shutdown: 'stay',
  deadline: 'stay',
  error: 'reporting',
  ...overrides,
});

/** The transition table; `run-states.spec.ts` walks every cell. */
export const RUN_TRANSITIONS: Table = {
  received: live({
    routed: 'waiting-for-handler',
    decided: 'reporting',
    shutdown: 'reporting',
    deadline: 'reporting',
  }),
  'waiting-for-handler': live({
    'handler-slot-taken': 'waiting-for-slot',
    shutdown: 'reporting',
    deadline: 'reporting',
  }),
  'waiting-for-slot': live({ 'run-slot-taken': 'running', shutdown: 'reporting', deadline: 'reporting' }),
  // A shutdown lets a running handler finish; only the deadline cuts it short.
  running: live({ 'handler-finished': 'reporting', deadline: 'reporting' }),
  reporting: live({
    'result-sent': 'publishing',
    'verb-sent': 'settled',
    // Re-decided in place: a refused or unencodable result becomes a failure result, then a verb.
    'result-refused': 'reporting',
  }),
  // Once sent, a result may be stored: neither a shutdown nor the deadline may nak it (another
  // replica would publish a second result, beyond the 2-minute de-duplication window for long
  // builds). A transient publish error is retried here.
  publishing: live({ 'verb-sent': 'settled', 'result-refused': 'reporting', error: 'stay' }),
  settled: live({ error: 'stay' }),
};

/** Where `event` takes a run in `state` (`stay` keeps it there). */
export function nextRunState(state: RunStateName, event: RunEvent): RunStateName {
  const next = RUN_TRANSITIONS[state][event];
  return next === 'stay' ? state : next;
}
