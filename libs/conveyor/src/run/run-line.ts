import type { LogFields } from '../logger/run-logger';
import type { Settlement } from '../settlement/settlement.policy';

/** What a message's owner knows about it when it settles: the facts its process-log line names. */
export interface RunLineFacts {
  runId?: string;
  resourceType?: string;
  resource?: string;
  event?: string;
  streamSequence: number;
  deliveryCount: number;
  /** From the message's arrival here to its final verb. */
  durationMs: number;
}

/** Characters of a run id the console line shows: enough to tell a node's runs apart, short to read. */
export const SHORT_RUN_ID_LENGTH = 8;

/**
 * The settlement line of one message, as a person reads it on a console:
 * `failed run 1a2b3c4d pipeline/build-1 create in 0.3 s: handler failed: boom; acked`.
 * The full run id, stream sequence and delivery go in `fields` (JSON process logs carry them;
 * Nest's console logger prints the text alone, so a line stays short enough to read).
 */
export function settlementLine(
  settlement: Settlement,
  facts: RunLineFacts,
): { text: string; fields: LogFields } {
  const who = facts.runId
    ? `run ${facts.runId.slice(0, SHORT_RUN_ID_LENGTH)}`
    : `message seq ${facts.streamSequence}`;
  const what = facts.resourceType && facts.resource ? ` ${facts.resourceType}/${facts.resource}` : '';
  const event = facts.event ? ` ${facts.event}` : '';
  const delivery = facts.deliveryCount > 1 ? ` (delivery ${facts.deliveryCount})` : '';
  // A success says nothing the kind does not ("reconciled").
  const why = settlement.kind === 'succeeded' ? '' : `: ${settlement.reason}`;
  const verb = verbWords(settlement);
  const then = verb === settlement.kind ? '' : `; ${verb}`;
  const text = `${settlement.kind} ${who}${what}${event} in ${formatDuration(facts.durationMs)}${delivery}${why}${then}`;
  const fields: LogFields = {
    run_id: facts.runId,
    resource: facts.resource,
    resource_type: facts.resourceType,
    event: facts.event,
    outcome: settlement.kind,
    action: settlement.action,
    delay_ms: settlement.delayMs,
    duration_ms: facts.durationMs,
    stream_seq: facts.streamSequence,
    delivery: facts.deliveryCount,
  };
  for (const key of Object.keys(fields)) if (fields[key] === undefined) delete fields[key];
  return { text, fields };
}

/** The final verb in plain words: what happens to the message next. */
export function verbWords(settlement: Pick<Settlement, 'action' | 'delayMs' | 'deadLetter'>): string {
  if (settlement.action === 'ack') return 'acked';
  if (settlement.action === 'nak') {
    return settlement.delayMs ? `will retry in ${formatDuration(settlement.delayMs)}` : 'will retry at once';
  }
  return settlement.deadLetter ? 'dead-lettered' : 'dropped';
}

/** `850 ms`, `1.2 s`, `5 s`, `2 min 5 s`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60_000) {
    const seconds = Math.round(ms / 100) / 10;
    return `${Number.isInteger(seconds) ? seconds : seconds.toFixed(1)} s`;
  }
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return seconds ? `${minutes} min ${seconds} s` : `${minutes} min`;
}
