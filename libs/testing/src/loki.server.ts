import { IncomingMessage, Server, ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  DEFAULT_MAX_LINE_BYTES,
  LokiHttpError,
  decodeJson,
  formatLabels,
  parsePush,
  parseRangeQuery,
  readBody,
  sortedLabels,
  text,
  type PushedEntry,
  type RangeQuery,
  type StoredEntry,
  type StoredStream,
  type Stream,
} from './loki.protocol';

/** One stored log entry, as {@link LokiServer.entries} returns it. */
export interface LokiEntry {
  /** The labels of the entry's stream. */
  labels: Record<string, string>;
  /** Unix epoch nanoseconds, as the decimal string Loki returns. */
  ts: string;
  line: string;
  /** Structured metadata (the optional third element of a pushed value), when it had any. */
  metadata?: Record<string, string>;
}

/**
 * A Grafana Loki stand-in on loopback that speaks the JSON push API and `query_range` (reliability
 * doc §5), for testing a log shipper without Docker. Pushes are validated as Loki does (400 with a
 * plain-text reason, which a shipper must not retry), and an entry with the same timestamp and line
 * as one already in its stream is dropped as an exact duplicate, which is what makes a retried
 * batch idempotent. Faults: {@link respondWith}, {@link hang}, {@link refuse}.
 *
 * Where it differs from Loki: JSON bodies only (protobuf gets 415); a push with one invalid entry
 * stores nothing, where Loki keeps the valid entries; no rate, age or out-of-order limits; no
 * `service_name` label or `detected_level` metadata added at ingestion, so compare a real Loki's
 * result labels as a subset.
 */
export class LokiServer {
  /** Push requests answered with an error status, injected ones included, in order. */
  readonly rejected: { status: number; reason: string }[] = [];
  private readonly streams = new Map<string, StoredStream>();
  private arrivals = 0;
  private accepted = 0;
  private received = 0;
  private fault: { status: number; remaining: number } | undefined;
  private hanging = false;
  private port = 0;

  private constructor(
    private readonly server: Server,
    private readonly maxLineBytes: number,
    /** The `Authorization` header every request must carry (a gateway in front of Loki), if any. */
    private readonly authorization?: string,
  ) {}

  /**
   * Listens on `127.0.0.1:port` (a free port by default); `maxLineBytes` is Loki's `max_line_size`.
   * `auth` makes it answer 401 to any request without these credentials, as the authenticating
   * gateway in front of a hosted Loki does.
   */
  static async start(
    options: {
      port?: number;
      maxLineBytes?: number;
      auth?: { username: string; password: string } | { bearerToken: string };
    } = {},
  ): Promise<LokiServer> {
    const server = createServer();
    const { auth } = options;
    const authorization = !auth
      ? undefined
      : 'bearerToken' in auth
        ? `Bearer ${auth.bearerToken}`
        : `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
    const loki = new LokiServer(server, options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES, authorization);
    server.on('request', (req: IncomingMessage, res: ServerResponse) =>
      loki.handle(req, res).catch((err: unknown) => {
        if (res.headersSent) res.destroy();
        else text(res, 500, err instanceof Error ? err.message : String(err));
      }),
    );
    await loki.listen(options.port ?? 0);
    return loki;
  }

  /** The base URL, e.g. `http://127.0.0.1:3100`; it stays the same across {@link refuse}/{@link accept}. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Push requests answered 204. */
  get pushes(): number {
    return this.accepted;
  }

  /** Push requests received: accepted, rejected and hung ones. */
  get requests(): number {
    return this.received;
  }

  /**
   * Stored entries of the streams whose labels include every `selector` pair, ordered by timestamp,
   * then arrival.
   */
  entries(selector: Record<string, string> = {}): LokiEntry[] {
    const pairs = Object.entries(selector);
    return this.select((labels) => pairs.every(([name, value]) => labels[name] === value)).map(
      ({ labels, entry }) => ({
        labels: { ...labels },
        ts: entry.ts.toString(),
        line: entry.line,
        ...(entry.metadata ? { metadata: { ...entry.metadata } } : {}),
      }),
    );
  }

  /** The next `times` push requests answer `status` (e.g. 429 or 500) and store nothing. */
  respondWith(status: number, times = 1): void {
    this.fault = { status, remaining: times };
  }

  /**
   * While on, push requests are accepted at the TCP level and never answered, like a Loki whose
   * ingesters stopped responding. Turning it off does not answer the requests already hanging: they
   * end when their client gives up, or at {@link refuse} or {@link close}.
   */
  hang(on = true): void {
    this.hanging = on;
  }

  /** Stops listening and drops open connections, as a crashed Loki would: connects fail with ECONNREFUSED. */
  async refuse(): Promise<void> {
    if (!this.server.listening) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Listens again on the same port after {@link refuse}. */
  async accept(): Promise<void> {
    if (!this.server.listening) await this.listen(this.port);
  }

  /** Stops the server and ends every connection, hung ones included. */
  async close(): Promise<void> {
    await this.refuse();
  }

  private listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', reject);
        this.port = (this.server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://loki');
    const route = `${req.method} ${url.pathname}`;
    if (this.authorization && req.headers.authorization !== this.authorization) {
      if (route === 'POST /loki/api/v1/push') this.received += 1;
      this.rejected.push({ status: 401, reason: 'unauthorized' });
      req.resume();
      return text(res, 401, 'Unauthorized');
    }
    if (route === 'POST /loki/api/v1/push') return this.push(req, res);
    if (route === 'GET /loki/api/v1/query_range') return this.queryRange(url.searchParams, res);
    if (route === 'GET /ready') return text(res, 200, 'ready');
    text(res, 404, '404 page not found');
  }

  private async push(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.received += 1;
    if (this.hanging) {
      // Read the body so that Node's request timeout never answers for us; then say nothing.
      req.resume();
      return;
    }
    const injected = this.takeFault();
    const body = await readBody(req);
    try {
      if (injected !== undefined) throw new LokiHttpError(injected, `injected failure (${injected})`);
      const streams = parsePush(await decodeJson(req, body), this.maxLineBytes);
      for (const stream of streams) this.store(stream);
      this.accepted += 1;
      res.writeHead(204).end();
    } catch (err) {
      if (!(err instanceof LokiHttpError)) throw err;
      this.rejected.push({ status: err.status, reason: err.message });
      text(res, err.status, err.message);
    }
  }

  private takeFault(): number | undefined {
    if (!this.fault || this.fault.remaining <= 0) return undefined;
    this.fault.remaining -= 1;
    return this.fault.status;
  }

  private store({ labels, entries }: Stream<PushedEntry>): void {
    const key = formatLabels(labels);
    let stream = this.streams.get(key);
    if (!stream) this.streams.set(key, (stream = { labels, entries: [], seen: new Set() }));
    for (const entry of entries) {
      // Loki's ingester drops an entry equal to the previous one of its stream, its unordered head
      // block one equal to any entry at that timestamp, and queries dedupe the rest: so the same
      // timestamp and line in the same stream is stored once, whenever it comes.
      const identity = `${entry.ts} ${entry.line}`;
      if (stream.seen.has(identity)) continue;
      stream.seen.add(identity);
      stream.entries.push({ ...entry, seq: this.arrivals++ });
    }
  }

  private select(
    match: (labels: Record<string, string>) => boolean,
  ): { labels: Record<string, string>; entry: StoredEntry }[] {
    const found: { labels: Record<string, string>; entry: StoredEntry }[] = [];
    for (const { labels, entries } of this.streams.values()) {
      if (match(labels)) for (const entry of entries) found.push({ labels, entry });
    }
    return found.sort((a, b) =>
      a.entry.ts === b.entry.ts ? a.entry.seq - b.entry.seq : a.entry.ts < b.entry.ts ? -1 : 1,
    );
  }

  private queryRange(params: URLSearchParams, res: ServerResponse): void {
    let query: RangeQuery;
    try {
      query = parseRangeQuery(params);
    } catch (err) {
      if (!(err instanceof LokiHttpError)) throw err;
      return text(res, err.status, err.message);
    }
    const { matchers, filters, start, end, limit, forward } = query;
    const hits = this.select((labels) => matchers.every(([name, value]) => (labels[name] ?? '') === value))
      .filter(
        ({ entry }) => (start === undefined || entry.ts >= start) && (end === undefined || entry.ts < end),
      )
      // Without the categorize-labels encoding flag, Loki returns structured metadata as labels, so
      // entries of one stream with different metadata come back as different result streams.
      .map(({ labels, entry }) => ({ entry, labels: sortedLabels({ ...entry.metadata, ...labels }) }))
      .filter(({ labels }) => filters.every(([name, value]) => (labels[name] ?? '') === value));
    if (!forward) hits.reverse();
    const result = new Map<string, { stream: Record<string, string>; values: [string, string][] }>();
    for (const { labels, entry } of hits.slice(0, limit)) {
      const key = formatLabels(labels);
      const series = result.get(key) ?? { stream: labels, values: [] };
      result.set(key, series);
      series.values.push([entry.ts.toString(), entry.line]);
    }
    res.writeHead(200, { 'Content-Type': 'application/json; charset=UTF-8' }).end(
      JSON.stringify({
        status: 'success',
        data: { resultType: 'streams', result: [...result.values()], stats: {} },
      }),
    );
  }
}
