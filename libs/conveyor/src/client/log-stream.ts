import type { IncomingMessage } from 'node:http';
import { createParser } from 'eventsource-parser';
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
 * server's replay of stored lines, then the live ones. Heartbeat comments are skipped; a line seen in
 * the replay and again live (the server's replay/subscribe overlap) is given once. Lines that do not
 * parse as a Log are skipped. Each iteration opens its own connection.
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

/** Identity of a line for de-duplication: the server sends no event ids (contract §11). */
const lineKey = (log: ConveyorLog) => `${log.driver}\u0000${log.timestamp}\u0000${log.message}`;
/** Keys remembered for de-duplication; the replay/live overlap is short, a run's log may not be. */
const DEDUP_WINDOW = 10_000;

async function* parseLogs(body: IncomingMessage, signal: AbortSignal): AsyncGenerator<ConveyorLog> {
  const ready: ConveyorLog[] = [];
  const seen = new Set<string>();
  const parser = createParser({
    // Comments (`: heartbeat`) reach only onComment, which is not set: ignored.
    onEvent: ({ data }) => {
      const log = parseLog(data);
      if (!log) return;
      const key = lineKey(log);
      if (seen.has(key)) return;
      seen.add(key);
      if (seen.size > DEDUP_WINDOW) seen.delete(seen.values().next().value as string);
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
