import type { Settlement } from '../settlement/settlement.policy';
import { formatDuration, settlementLine, verbWords } from './run-line';

const runId = '1a2b3c4d-5e6f-4a0b-8c9d-0e1f2a3b4c5d';
const facts = {
  runId,
  resourceType: 'pipeline',
  resource: 'build-1',
  event: 'create',
  streamSequence: 3,
  deliveryCount: 1,
  durationMs: 1234,
};

describe('settlementLine', () => {
  it('names the run by its first 8 characters, the resource and event, with a duration and a plain verb', () => {
    const failed: Settlement = {
      kind: 'failed',
      action: 'ack',
      reason: 'handler failed: boom',
      level: 'warn',
    };
    const { text, fields } = settlementLine(failed, facts);
    expect(text).toBe('failed run 1a2b3c4d pipeline/build-1 create in 1.2 s: handler failed: boom; acked');
    expect(fields).toEqual({
      run_id: runId,
      resource: 'build-1',
      resource_type: 'pipeline',
      event: 'create',
      outcome: 'failed',
      action: 'ack',
      duration_ms: 1234,
      stream_seq: 3,
      delivery: 1,
    });
  });

  it('leaves out what a success adds nothing with, and says a later delivery', () => {
    const ok: Settlement = { kind: 'succeeded', action: 'ack', reason: 'reconciled', level: 'log' };
    expect(settlementLine(ok, { ...facts, deliveryCount: 2, durationMs: 80 }).text).toBe(
      'succeeded run 1a2b3c4d pipeline/build-1 create in 80 ms (delivery 2); acked',
    );
  });

  it('names a message without a readable run by its stream sequence, and says a dead letter once', () => {
    const dead: Settlement = {
      kind: 'dead-lettered',
      action: 'term',
      deadLetter: true,
      reason: 'undecodable: bad JSON',
      level: 'error',
    };
    expect(settlementLine(dead, { streamSequence: 17, deliveryCount: 1, durationMs: 3 }).text).toBe(
      'dead-lettered message seq 17 in 3 ms: undecodable: bad JSON',
    );
  });
});

describe('verbWords', () => {
  it('says what happens to the message next', () => {
    expect(verbWords({ action: 'ack' })).toBe('acked');
    expect(verbWords({ action: 'nak', delayMs: 5000 })).toBe('will retry in 5 s');
    expect(verbWords({ action: 'nak', delayMs: 50 })).toBe('will retry in 50 ms');
    expect(verbWords({ action: 'nak' })).toBe('will retry at once');
    expect(verbWords({ action: 'term', deadLetter: true })).toBe('dead-lettered');
    expect(verbWords({ action: 'term' })).toBe('dropped');
  });
});

describe('formatDuration', () => {
  it('reads at a glance', () => {
    expect(formatDuration(850)).toBe('850 ms');
    expect(formatDuration(1234)).toBe('1.2 s');
    expect(formatDuration(5000)).toBe('5 s');
    expect(formatDuration(125_000)).toBe('2 min 5 s');
    expect(formatDuration(120_000)).toBe('2 min');
  });
});
