import {
  IllegalRunTransition,
  RUN_EVENTS,
  RUN_STATES,
  RunEvent,
  RunStateName,
  nextRunState,
} from './run-states';

/** Every legal cell of the (state, event) table, written out: a change to the machine must change this. */
const EXPECTED: Record<RunStateName, Partial<Record<RunEvent, RunStateName>>> = {
  received: { routed: 'waiting-for-handler', decided: 'reporting', error: 'reporting' },
  'waiting-for-handler': {
    'handler-slot-taken': 'waiting-for-slot',
    decided: 'reporting',
    error: 'reporting',
  },
  'waiting-for-slot': { 'run-slot-taken': 'running', decided: 'reporting', error: 'reporting' },
  running: {
    'lease-busy': 'waiting-for-lease',
    'handler-finished': 'reporting',
    decided: 'reporting',
    error: 'reporting',
  },
  'waiting-for-lease': {
    'lease-may-be-free': 'waiting-for-handler',
    decided: 'reporting',
    error: 'reporting',
  },
  reporting: {
    'result-sent': 'publishing',
    'verb-sent': 'settled',
    'result-refused': 'reporting',
    error: 'reporting',
  },
  publishing: {
    'result-sent': 'publishing',
    'verb-sent': 'settled',
    'result-refused': 'reporting',
    error: 'publishing',
  },
  settled: { error: 'settled' },
};

describe('the message state machine', () => {
  const cells = RUN_STATES.flatMap((state) => RUN_EVENTS.map((event) => [state, event] as const));

  it.each(cells)('%s + %s', (state, event) => {
    const expected = EXPECTED[state][event];
    if (expected) expect(nextRunState(state, event)).toBe(expected);
    // Any other event is impossible there: a bug in the run's owner, thrown, never ignored.
    else expect(() => nextRunState(state, event)).toThrow(IllegalRunTransition);
  });

  it('leads every live state to a decision on an error, except publishing (the result may be stored)', () => {
    for (const state of RUN_STATES.filter((s) => s !== 'settled' && s !== 'publishing')) {
      expect(nextRunState(state, 'error')).toBe('reporting');
    }
    expect(nextRunState('publishing', 'error')).toBe('publishing');
  });

  it('lets every waiting state end in a decision (a cancel or shutdown ends the wait)', () => {
    for (const state of ['received', 'waiting-for-handler', 'waiting-for-slot', 'waiting-for-lease'] as const)
      expect(nextRunState(state, 'decided')).toBe('reporting');
  });

  it('never decides again once a result was sent, except when the server refused it', () => {
    expect(() => nextRunState('publishing', 'decided')).toThrow(IllegalRunTransition);
    expect(() => nextRunState('publishing', 'handler-finished')).toThrow(IllegalRunTransition);
  });

  it('reaches settled only through a verb, and nothing leaves settled', () => {
    for (const [state, event] of cells) {
      const next = EXPECTED[state][event];
      if (next === 'settled' && state !== 'settled') expect(event).toBe('verb-sent');
      if (state === 'settled' && next) expect(next).toBe('settled');
    }
  });
});
