import type { IncomingMessage } from 'node:http';
import type * as EventSourceParser from 'eventsource-parser';
import { Observable } from 'rxjs';
import type { ConveyorLog } from '../protocol';
import type { ApiCall, ApiRequester } from './api-request';

/** Options of the live log streams. */
export interface LiveLogOptions {
  /**
   * Ends the stream (the iteration returns, the Observable completes) and closes its connection.
   * The server never ends a log stream and sends no end-of-run event (contract §11): the caller
   * decides when to stop, e.g. when the run's result is known (`previousResult` of the last step's
   * driver on the resource, or the result on `pipelines.driver.result`), then aborts.
   */
  signal?: AbortSignal;
  /**
   * Ceiling of the wait for the response headers. Default the client's `timeoutMs`, at least 30 s: a
   * server that sends its headers with the first line or heartbeat (every 15 s) must not time out.
   */
  timeoutMs?: number;
}

/**
 * Lines of one SSE log stream (`/logs/streams/{driver}/{runid}` or `/logs/pipeline/{runid}`): the
 * server's replay of stored lines, then the live ones. Heartbeat comments are skipped; lines that do
 * not parse as a Log are skipped. Each iteration opens its own connection, and a new connection
 * replays the run's lines from the start.
 *
 * Every event is a line: two lines with the same driver, timestamp and message are two lines (a Go
 * driver stamps to the second and may log the same text twice in it), so lines are never
 * de-duplicated by content. Only an event that repeats an SSE `id:` already seen on this connection
 * is dropped; Conveyor 0.6.x sends no ids, so a line the server sends in both its replay and its
 * live part (a rare overlap of its own, contract §11) is given twice rather than risk dropping one.
 */
export class LogStream implements AsyncIterable<ConveyorLog> {
  constructor(
    private readonly requester: ApiRequester,
    private readonly path: string,
    private readonly options: LiveLogOptions = {},
  ) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<ConveyorLog> {
    const outer = this.options.signal;
    if (outer?.aborted) return;
    const local = new AbortController();
    const stop = () => local.abort();
    outer?.addEventListener('abort', stop, { once: true });
    const call: ApiCall = { method: 'GET', path: this.path, idempotent: false };
    let body: IncomingMessage | undefined;
    try {
      body = await this.requester.open(call, local.signal, this.options.timeoutMs);
      // Destroying the response closes its socket: the server sees the client go (and unsubscribes).
      local.signal.addEventListener('abort', () => body?.destroy(), { once: true });
      yield* parseLogs(body, local.signal);
    } catch (err) {
      // The caller's abort is the normal end of a stream that never ends by itself.
      if (!local.signal.aborted) throw err;
    } finally {
      outer?.removeEventListener('abort', stop);
      local.abort(); // a `break` in the caller's loop lands here: free the socket too
      body?.destroy();
    }
  }

  /** The same stream as a cold Observable: each subscription opens a connection, unsubscribing closes it. */
  asObservable(): Observable<ConveyorLog> {
    return new Observable<ConveyorLog>((subscriber) => {
      // Its own signal: an async generator waiting for data cannot be returned from, but aborted.
      const unsubscribed = new AbortController();
      const outer = this.options.signal;
      const signal = outer ? AbortSignal.any([outer, unsubscribed.signal]) : unsubscribed.signal;
      const stream = new LogStream(this.requester, this.path, { ...this.options, signal });
      void (async () => {
        try {
          for await (const log of stream) subscriber.next(log);
          subscriber.complete();
        } catch (err) {
          subscriber.error(err);
        }
      })();
      return () => unsubscribed.abort();
    });
  }
}

/** Event ids remembered per connection; a server repeats one only around its replay/live switch. */
const SEEN_IDS_WINDOW = 10_000;

async function* parseLogs(body: IncomingMessage, signal: AbortSignal): AsyncGenerator<ConveyorLog> {
  const ready: ConveyorLog[] = [];
  const seenIds = new Set<string>();
  // Loaded by the first stream opened, not by every driver that imports the library.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createParser } = require('eventsource-parser') as typeof EventSourceParser;
  const parser = createParser({
    // Comments (`: heartbeat`) reach only onComment, which is not set: ignored.
    onEvent: ({ id, data }) => {
      const log = parseLog(data);
      if (!log) return;
      // The position the server gives a line is its identity; without one, every event is a line.
      if (id) {
        if (seenIds.has(id)) return;
        seenIds.add(id);
        if (seenIds.size > SEEN_IDS_WINDOW) seenIds.delete(seenIds.values().next().value as string);
      }
      ready.push(log);
    },
  });
  const decoder = new TextDecoder();
  for await (const chunk of body) {
    if (signal.aborted) return;
    // `stream: true` keeps a character split across chunks intact.
    parser.feed(decoder.decode(chunk as Buffer, { stream: true }));
    for (const log of ready.splice(0)) yield log;
  }
}

function parseLog(data: string): ConveyorLog | undefined {
  try {
    const log = JSON.parse(data) as Partial<ConveyorLog>;
    return typeof log === 'object' && log !== null && typeof log.message === 'string'
      ? (log as ConveyorLog)
      : undefined;
  } catch {
    return undefined;
  }
}
