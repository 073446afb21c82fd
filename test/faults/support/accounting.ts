import { MESSAGES_STREAM } from '@conveyor-ci/nestjs/internal';
import { consumerBacklog, sleep } from '@conveyor-ci/testing';
import type { LedgerEntry } from './event-feeder';
import { AccountingRow, recordRow } from './fault-rows';
import type { FaultEnv } from './fault-env';
import { StoredResult, storedDeadLetters, storedResults } from './stored-records';

interface Outcome {
  row: AccountingRow;
  /** Stored results by run id, and dead-letter records by `messages` sequence, for case-specific checks. */
  results: Map<string, StoredResult[]>;
  deadLetters: Map<number, { count: number; reason: string }>;
  /** Ledger entries that ended differently than expected (e.g. a good event that failed). */
  wrong: string[];
  /** Ledger entries with no outcome at all. */
  missing: string[];
}

/**
 * Waits until the driver's consumer has nothing pending or unacknowledged and every event that must
 * end in a result has one stored, then accounts for every ledger entry.
 */
export async function account(
  env: FaultEnv,
  consumer: string,
  caseName: string,
  startedAt: number,
  options: { timeoutMs?: number; resumeMs?: number; notes?: string } = {},
): Promise<Outcome> {
  const ledger = env.feeder.ledger;
  const wantResults = ledger.filter((e) => e.expect === 'success' || e.expect === 'failure').length;
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  const complete = (stored: Map<string, StoredResult[]>) =>
    ledger.every(
      (e) => !e.runId || e.expect === 'skipped' || e.expect === 'dead-letter' || stored.has(e.runId),
    );
  let results = new Map<string, StoredResult[]>();
  let idleSince: number | undefined;
  for (;;) {
    const backlog = await consumerBacklog(env.jsm, consumer).catch(() => undefined);
    const idle = backlog?.pending === 0 && backlog.ackPending === 0;
    idleSince = idle ? (idleSince ?? Date.now()) : undefined;
    // The watchers may have missed a result while reconnecting: after 3 s idle, the store decides.
    if (idle && (env.wire.distinct >= wantResults || Date.now() - idleSince! >= 3000)) {
      results = await storedResults(env.jsm);
      if (complete(results)) break;
    }
    if (Date.now() > deadline) {
      results = await storedResults(env.jsm);
      break;
    }
    await sleep(500);
  }
  const drainMs = Date.now() - startedAt;
  const dead = await storedDeadLetters(env.jsm);
  const info = await env.jsm.consumers.info(MESSAGES_STREAM, consumer);
  return tally(caseName, ledger, results, dead, {
    deliveries: info.delivered.consumer_seq,
    unsettled: info.num_pending + info.num_ack_pending,
    wireDuplicates: env.wire.duplicates,
    longestGapMs: env.wire.longestGap(startedAt),
    drainMs,
    resumeMs: options.resumeMs,
    notes: options.notes,
  });
}

function tally(
  caseName: string,
  ledger: LedgerEntry[],
  results: Map<string, StoredResult[]>,
  dead: Map<number, { count: number; reason: string }>,
  flow: {
    deliveries: number;
    unsettled: number;
    wireDuplicates: number;
    longestGapMs: number;
    drainMs: number;
    resumeMs?: number;
    notes?: string;
  },
): Outcome {
  const wrong: string[] = [];
  const missing: string[] = [];
  let reconciled = 0;
  let deadLettered = 0;
  let skipped = 0;
  for (const entry of ledger) {
    const stored = entry.runId ? results.get(entry.runId) : undefined;
    const lettered = dead.has(entry.seq);
    if (stored) reconciled += 1;
    if (lettered) deadLettered += 1;
    const what = `${entry.label} (seq ${entry.seq}${entry.runId ? `, run ${entry.runId}` : ''})`;
    if (entry.expect === 'skipped') {
      skipped += 1;
      if (stored || lettered)
        wrong.push(`${what}: expected no run, got ${stored ? 'a result' : 'a dead letter'}`);
      continue;
    }
    if (!stored && !lettered) {
      missing.push(what);
      continue;
    }
    if (entry.expect === 'dead-letter' && !lettered) wrong.push(`${what}: expected a dead-letter record`);
    if (entry.expect === 'success' && !stored?.[0]?.success)
      wrong.push(`${what}: expected success, got ${JSON.stringify(stored)}`);
    if (entry.expect === 'failure' && stored?.[0]?.success !== false)
      wrong.push(`${what}: expected a failure result, got ${JSON.stringify(stored)}`);
  }
  let storedDuplicates = 0;
  for (const list of results.values()) storedDuplicates += list.length - 1;
  for (const { count } of dead.values()) storedDuplicates += count - 1;
  if (flow.unsettled > 0) missing.push(`${flow.unsettled} message(s) still pending or unacknowledged`);
  const row: AccountingRow = {
    case: caseName,
    published: ledger.length,
    resultsStored: [...results.values()].reduce((n, l) => n + l.length, 0),
    reconciled,
    deadLettered,
    skipped,
    redelivered: Math.max(0, flow.deliveries - ledger.length),
    wireDuplicates: flow.wireDuplicates,
    storedDuplicates,
    lost: missing.length,
    longestGapMs: flow.longestGapMs,
    drainMs: flow.drainMs,
    ...(flow.resumeMs !== undefined ? { resumeMs: flow.resumeMs } : {}),
    ...(flow.notes ? { notes: flow.notes } : {}),
  };
  return { row, wrong, missing, results, deadLetters: dead };
}

/** Records the row, then fails the case unless nothing was lost, nothing stored twice and every event ended as expected. */
export function expectNothingLost(outcome: Outcome): void {
  recordRow(outcome.row);
  expect({ missing: outcome.missing, wrong: outcome.wrong }).toEqual({ missing: [], wrong: [] });
  expect(outcome.row.lost).toBe(0);
  expect(outcome.row.storedDuplicates).toBe(0);
}
