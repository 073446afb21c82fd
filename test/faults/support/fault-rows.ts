import { appendFileSync } from 'node:fs';

/** Env var naming the file the fault cases append their rows to (set by the project's global setup). */
export const FAULT_ROWS_ENV = 'CONVEYOR_FAULT_ROWS';

/** One case's accounting: what went in, what came out, and how it flowed. */
export interface AccountingRow {
  case: string;
  /** Events with a PubAck. */
  published: number;
  /** Results in `pipeline-engine`. */
  resultsStored: number;
  /** Runs with a stored result, their messages acked (the consumer ends with nothing pending). */
  reconciled: number;
  /** Messages with a stored dead-letter record. */
  deadLettered: number;
  /** Events the handler's `events` filter skips by design (acked, no result). */
  skipped: number;
  /** Deliveries beyond one per event (AckWait expiries, naks, restarts). */
  redelivered: number;
  /** Results seen on the wire beyond one per run (a lower bound: see WireResults). */
  wireDuplicates: number;
  /** Results or dead-letter records stored more than once for one message. */
  storedDuplicates: number;
  /** Events with neither a result nor a dead-letter record nor a designed skip. Must be 0. */
  lost: number;
  /** Longest time with no new result, from the first publish to the last result. */
  longestGapMs: number;
  /** From the first publish until everything was stored and settled. */
  drainMs: number;
  /** Slowest time from a connection coming back to the next new result, when the case measures it. */
  resumeMs?: number;
  notes?: string;
}

/** Appends the row for the table printed at the end of the run, and prints it now. */
export function recordRow(row: AccountingRow): void {
  const file = process.env[FAULT_ROWS_ENV];
  if (file) appendFileSync(file, `${JSON.stringify(row)}\n`);
  // Straight to stdout: jest would add a source location to a console.log, read as a stack.
  process.stdout.write(`accounting: ${JSON.stringify(row)}\n`);
}
