import { Logger } from '@nestjs/common';
import type { NatsConnection, Subscription } from 'nats';
import { ConveyorLog, assertSubjectToken } from '../protocol';
import { redactText } from '../security/redact';
import { fetchWithin } from './sinks/fetch-within';

/** One line read back from Loki. */
export interface LokiLogLine {
  /** Unix epoch ns, as Loki returns it (a string: it does not fit a double). */
  ts: string;
  line: string;
  labels: Record<string, string>;
}

/** What to read from Loki: a driver's lines, optionally of one run, oldest first. */
export interface LokiQuery {
  driver: string;
  runId?: string;
  /** ns epoch, inclusive. Default: Loki's (1 h ago). */
  start?: bigint;
  /** ns epoch, exclusive. */
  end?: bigint;
  /** Page size; Loki caps it at `max_entries_limit_per_query` (5,000 by default). */
  limit?: number;
  /** The seed's layout had `run_id` as a label; the default puts it in structured metadata. */
  legacyLabels?: boolean;
  tenant?: string;
}

const quote = (value: string) => JSON.stringify(value);

/**
 * Reads a driver's (or one run's) lines back from Loki with `query_range`, oldest first, paging past
 * Loki's per-query limit. Lines that share a timestamp at a page boundary are not lost: the next page
 * starts at that timestamp and already-seen entries are skipped.
 */
export async function queryLokiLogs(lokiUrl: string, query: LokiQuery): Promise<LokiLogLine[]> {
  const driver = assertSubjectToken('driver name', query.driver);
  const runId = query.runId === undefined ? undefined : assertSubjectToken('run id', query.runId);
  const selector =
    runId && query.legacyLabels
      ? `{driver=${quote(driver)},run_id=${quote(runId)}}`
      : `{driver=${quote(driver)}}${runId ? ` | run_id=${quote(runId)}` : ''}`;
  const limit = query.limit ?? 1000;
  const out: LokiLogLine[] = [];
  const seen = new Set<string>();
  let start = query.start;
  for (;;) {
    const params = new URLSearchParams({ query: selector, limit: String(limit), direction: 'forward' });
    if (start !== undefined) params.set('start', start.toString());
    if (query.end !== undefined) params.set('end', query.end.toString());
    const response = await fetchWithin(
      `${lokiUrl.replace(/\/+$/, '')}/loki/api/v1/query_range?${params}`,
      { headers: query.tenant ? { 'X-Scope-OrgID': query.tenant } : {} },
      10_000,
    );
    if (!response.ok) throw new Error(`Loki query_range -> ${response.status}: ${response.text}`);
    const body = JSON.parse(response.text) as {
      data: { result: { stream: Record<string, string>; values: [string, string][] }[] };
    };
    const page = body.data.result
      .flatMap((s) => s.values.map(([ts, line]) => ({ ts, line, labels: s.stream })))
      .sort((a, b) => (BigInt(a.ts) < BigInt(b.ts) ? -1 : BigInt(a.ts) > BigInt(b.ts) ? 1 : 0));
    let fresh = 0;
    for (const entry of page) {
      const key = `${entry.ts}\u0000${JSON.stringify(entry.labels)}\u0000${entry.line}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(entry);
      fresh += 1;
    }
    if (page.length < limit || fresh === 0) return out;
    start = BigInt(page[page.length - 1].ts);
  }
}

/** Options of {@link subscribeRunLogs}. */
export interface RunLogSubscriptionOptions {
  /**
   * Called with what `onLog` threw, and with a subscription error from NATS (a permissions
   * violation, which ends the subscription), instead of the default: a Nest `Logger` warning naming
   * the subject and the run. A throwing `onLog` never ends the subscription. What `onError` throws
   * in turn is logged as that warning.
   */
  onError?: (err: unknown) => void;
}

/**
 * Subscribes to a run's live lines (`live.logs.{runId}.*`, every driver), the subject the server's SSE
 * forwards; call `unsubscribe()` on the result when done. Live lines are core NATS: at-most-once, and
 * only those published while subscribed. A message that is not a Log's JSON is skipped. An exception
 * from `onLog` goes to `options.onError`, or is logged as a warning; it never ends the subscription.
 */
export function subscribeRunLogs(
  nc: NatsConnection,
  runId: string,
  onLog: (log: ConveyorLog) => void,
  options: RunLogSubscriptionOptions = {},
): Subscription {
  const subject = `live.logs.${assertSubjectToken('run id', runId)}.*`;
  const report = (err: unknown, what: string) => {
    if (options.onError) {
      try {
        return options.onError(err);
      } catch (fromHandler) {
        [err, what] = [fromHandler, 'onError threw'];
      }
    }
    readerLog.warn(`subscribeRunLogs ${subject} (run ${runId}): ${what}: ${errorText(err)}`);
  };
  return nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err) return report(err, 'the subscription failed');
      let log: ConveyorLog;
      try {
        log = JSON.parse(new TextDecoder().decode(msg.data)) as ConveyorLog;
      } catch {
        return; // not a Log line: skipped, as the server's SSE clients skip what they cannot parse
      }
      try {
        onLog(log);
      } catch (fromCallback) {
        report(fromCallback, 'onLog threw (still subscribed)');
      }
    },
  });
}

const readerLog = new Logger('subscribeRunLogs');

/** An error for a warning line: redacted, as a callback's error may quote a URL with its password. */
function errorText(err: unknown): string {
  try {
    return redactText(err instanceof Error ? `${err.name}: ${err.message}` : String(err));
  } catch {
    return 'an unprintable value';
  }
}
