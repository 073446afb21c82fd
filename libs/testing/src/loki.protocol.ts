import type { IncomingMessage, ServerResponse } from 'node:http';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';

/**
 * Loki's HTTP wire format as the local Loki server reads and answers it: push bodies (JSON, gzip),
 * label sets, `query_range` parameters and LogQL stream selectors with line filters.
 */

const gunzipAsync = promisify(gunzip);

/** Loki's default `max_line_size` (reliability doc §5.2). */
export const DEFAULT_MAX_LINE_BYTES = 256 * 1024;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const MAX_INT64 = 2n ** 63n - 1n;

export interface PushedEntry {
  ts: bigint;
  line: string;
  metadata?: Record<string, string>;
}

export interface StoredEntry extends PushedEntry {
  /** Arrival order across all streams: the tie-break between equal timestamps. */
  seq: number;
}

export interface Stream<E> {
  labels: Record<string, string>;
  entries: E[];
}

export interface StoredStream extends Stream<StoredEntry> {
  /** `<ts> <line>` of every entry, to spot exact duplicates. */
  seen: Set<string>;
}

export interface RangeQuery {
  matchers: [string, string][];
  filters: [string, string][];
  start?: bigint;
  end?: bigint;
  limit: number;
  forward: boolean;
}

/** A request that Loki answers with an error status and a plain-text reason. */
export class LokiHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export const bad = (reason: string) => new LokiHttpError(400, reason);

/** Answers as Go's `http.Error` does: plain text with a trailing newline. */
export function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`${body}\n`);
}

export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function decodeJson(req: IncomingMessage, body: Buffer): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json') {
    throw new LokiHttpError(
      415,
      `unsupported Content-Type ${JSON.stringify(type)}: only application/json is served`,
    );
  }
  const encoding = (req.headers['content-encoding'] ?? '').trim().toLowerCase();
  let raw = body;
  if (encoding === 'gzip') {
    raw = await gunzipAsync(body).catch((err: Error) => {
      throw bad(`invalid gzip body: ${err.message}`);
    });
  } else if (encoding !== '' && encoding !== 'identity') {
    throw new LokiHttpError(415, `unsupported Content-Encoding ${JSON.stringify(encoding)}`);
  }
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw bad(`invalid JSON: ${(err as Error).message}`);
  }
}

export function parsePush(body: unknown, maxLineBytes: number): Stream<PushedEntry>[] {
  if (!isRecord(body) || !Array.isArray(body.streams)) throw bad('the body must be {"streams":[...]}');
  if (body.streams.length === 0) throw bad('the push request has no streams');
  return body.streams.map((stream: unknown, i: number) => {
    const where = `streams[${i}]`;
    if (!isRecord(stream)) throw bad(`${where} must be an object`);
    const labels = parseLabels(stream.stream, `${where}.stream`);
    if (!Array.isArray(stream.values) || stream.values.length === 0) {
      throw bad(`${where}.values: at least one value is required per stream`);
    }
    const entries = stream.values.map((value: unknown, j: number) =>
      parseValue(value, `${where}.values[${j}]`, labels, maxLineBytes),
    );
    return { labels, entries };
  });
}

export function parseLabels(labels: unknown, where: string): Record<string, string> {
  if (!isRecord(labels) || Object.keys(labels).length === 0) {
    throw bad(`${where}: at least one label pair is required per stream`);
  }
  for (const [name, value] of Object.entries(labels)) {
    if (!LABEL_NAME.test(name)) throw bad(`${where}: invalid label name ${JSON.stringify(name)}`);
    if (typeof value !== 'string') throw bad(`${where}: the value of label ${name} must be a string`);
  }
  return labels as Record<string, string>;
}

export function parseValue(
  value: unknown,
  where: string,
  labels: Record<string, string>,
  maxLineBytes: number,
): PushedEntry {
  if (!Array.isArray(value) || value.length < 2 || value.length > 3) {
    throw bad(`${where} must be ["<unix epoch ns>", "<line>"] with optional structured metadata`);
  }
  const [ts, line, metadata] = value as unknown[];
  // A JSON number loses nanosecond precision, which is why Loki insists on a string.
  if (typeof ts !== 'string' || !/^\d+$/.test(ts) || BigInt(ts) > MAX_INT64) {
    throw bad(
      `${where}[0]: the timestamp must be a string of unix epoch nanoseconds, got ${JSON.stringify(ts)}`,
    );
  }
  if (typeof line !== 'string') throw bad(`${where}[1]: the line must be a string`);
  const size = Buffer.byteLength(line, 'utf8');
  if (size > maxLineBytes) {
    throw bad(
      `line_too_long: Max entry size '${maxLineBytes}' bytes exceeded for stream '${formatLabels(labels)}' ` +
        `while adding an entry with length '${size}' bytes`,
    );
  }
  if (
    value.length === 3 &&
    !(isRecord(metadata) && Object.values(metadata).every((v) => typeof v === 'string'))
  ) {
    throw bad(`${where}[2]: structured metadata must be a flat object of string values`);
  }
  const hasMetadata = isRecord(metadata) && Object.keys(metadata).length > 0;
  return { ts: BigInt(ts), line, ...(hasMetadata ? { metadata: metadata as Record<string, string> } : {}) };
}

export function parseRangeQuery(params: URLSearchParams): RangeQuery {
  const { matchers, filters } = parseLogQuery(params.get('query') ?? '');
  const rawLimit = params.get('limit') || '100';
  if (!/^\d+$/.test(rawLimit) || Number(rawLimit) <= 0) {
    throw bad(`invalid limit ${JSON.stringify(rawLimit)}: limit must be a positive value`);
  }
  const start = parseTime(params.get('start'));
  const end = parseTime(params.get('end'));
  if (start !== undefined && end !== undefined && end < start) {
    throw bad('end timestamp must not be before start time');
  }
  const direction = (params.get('direction') || 'backward').toLowerCase();
  if (direction !== 'forward' && direction !== 'backward') {
    throw bad(`invalid direction '${params.get('direction')}'`);
  }
  return { matchers, filters, start, end, limit: Number(rawLimit), forward: direction === 'forward' };
}

/** Unix epoch integers only; like Loki, one of 10 digits or fewer means seconds, not nanoseconds. */
export function parseTime(value: string | null): bigint | undefined {
  if (!value) return undefined;
  if (!/^\d+$/.test(value)) throw bad(`cannot parse ${JSON.stringify(value)} as a unix epoch timestamp`);
  return value.length <= 10 ? BigInt(value) * 1_000_000_000n : BigInt(value);
}

/**
 * The LogQL subset this server answers: a stream selector of `=` matchers, then any number of
 * `| name="value"` label filters (which also see structured metadata). Values are double-quoted
 * with JSON escapes, or back-quoted raw strings.
 */
export function parseLogQuery(query: string): { matchers: [string, string][]; filters: [string, string][] } {
  let pos = 0;
  const error = (what: string) => bad(`parse error at line 1, col ${pos + 1}: ${what}`);
  const skipSpace = () => {
    while (/\s/.test(query.charAt(pos))) pos += 1;
  };
  const take = (token: string): boolean => {
    skipSpace();
    if (!query.startsWith(token, pos)) return false;
    pos += token.length;
    return true;
  };
  const match = (pattern: RegExp): string | undefined => {
    skipSpace();
    const found = pattern.exec(query.slice(pos))?.[0];
    if (found !== undefined) pos += found.length;
    return found;
  };
  const pair = (): [string, string] => {
    const name = match(/^[a-zA-Z_][a-zA-Z0-9_]*/);
    if (name === undefined || !take('=') || query.charAt(pos) === '~') {
      throw error('only name="value" matchers and label filters are supported');
    }
    const literal = match(/^(?:"(?:[^"\\]|\\.)*"|`[^`]*`)/);
    if (literal === undefined) throw error('expected a quoted string');
    if (literal.startsWith('`')) return [name, literal.slice(1, -1)];
    try {
      return [name, JSON.parse(literal) as string];
    } catch {
      throw error(`invalid string ${literal}`);
    }
  };

  if (!take('{')) throw error('a log query starts with a stream selector {...}');
  const matchers: [string, string][] = [];
  if (!take('}')) {
    do matchers.push(pair());
    while (take(','));
    if (!take('}')) throw error('expected , or }');
  }
  const filters: [string, string][] = [];
  while (take('|')) filters.push(pair());
  skipSpace();
  if (pos < query.length) throw error(`unexpected ${JSON.stringify(query.slice(pos))}`);
  if (!matchers.some(([, value]) => value !== '')) {
    throw bad(
      'queries require at least one regexp or equality matcher that does not have an empty-compatible value',
    );
  }
  return { matchers, filters };
}

/** Loki's label-set notation, `{a="1", b="2"}` with sorted names: the identity of a stream. */
export function formatLabels(labels: Record<string, string>): string {
  const pairs = Object.entries(sortedLabels(labels)).map(
    ([name, value]) => `${name}=${JSON.stringify(value)}`,
  );
  return `{${pairs.join(', ')}}`;
}

export function sortedLabels(labels: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
