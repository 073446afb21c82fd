import { RUN_EVENTS, RUN_STATES, RUN_TRANSITIONS, RunEvent, RunStateName, nextRunState } from './run-states';

/** Every cell of the (state, event) table, written out: a change to the machine must change this. */
const EXPECTED: Record<RunStateName, Partial<Record<RunEvent, RunStateName>>> = {
  received: {
    routed: 'waiting-for-handler',
    decided: 'reporting',
    shutdown: 'reporting',
    deadline: 'reporting',
    error: 'reporting',
  },
  'waiting-for-handler': {
    'handler-slot-taken': 'waiting-for-slot',
    shutdown: 'reporting',
    deadline: 'reporting',
    error: 'reporting',
  },
  'waiting-for-slot': {
    'run-slot-taken': 'running',
    shutdown: 'reporting',
    deadline: 'reporting',
    error: 'reporting',
  },
  running: { 'handler-finished': 'reporting', deadline: 'reporting', error: 'reporting' },
  reporting: {
    'result-sent': 'publishing',
    'verb-sent': 'settled',
    'result-refused': 'reporting',
    error: 'reporting',
  },
  publishing: { 'verb-sent': 'settled', 'result-refused': 'reporting' },
  settled: {},
};

describe('the message state machine', () => {
  const cells = RUN_STATES.flatMap((state) => RUN_EVENTS.map((event) => [state, event] as const));

  it.each(cells)('%s + %s', (state, event) => {
    // Unlisted cells keep the state: the event changes nothing there.
    expect(nextRunState(state, event)).toBe(EXPECTED[state][event] ?? state);
  });

  it('is total: every (state, event) pair has an answer', () => {
    for (const [state, event] of cells) expect(RUN_TRANSITIONS[state][event]).toBeDefined();
  });

  it('leads every live state to a decision on an error, except publishing (the result may be stored)', () => {
    for (const state of RUN_STATES.filter((s) => s !== 'settled' && s !== 'publishing')) {
      expect(nextRunState(state, 'error')).toBe('reporting');
    }
    expect(nextRunState('publishing', 'error')).toBe('publishing');
  });

  it('never naks a sent result: shutdown and deadline leave publishing alone', () => {
    expect(nextRunState('publishing', 'shutdown')).toBe('publishing');
    expect(nextRunState('publishing', 'deadline')).toBe('publishing');
  });

  it('reaches settled only through a verb, and nothing leaves settled', () => {
    for (const [state, event] of cells) {
      if (nextRunState(state, event) === 'settled' && state !== 'settled') expect(event).toBe('verb-sent');
      if (state === 'settled') expect(nextRunState(state, event)).toBe('settled');
    }
  });
});
