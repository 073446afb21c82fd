import { consolePage } from './console-page';
import { ConsoleRequestError, type ConsoleTracker } from './console-tracker';

/** What the console answers one request with. */
export interface ConsoleResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** One request to the console, whatever the HTTP server (Node's, Express, Fastify). */
export interface ConsoleRequest {
  method: string;
  /** The path below the console's mount point: `''` or `/` for the page, `/api/state`… */
  path: string;
  /** The parsed JSON body of a POST (absent: none). */
  body?: unknown;
  /** `content-type`, `origin` and `host` headers, lower-case names. */
  headers: Record<string, string | string[] | undefined>;
}

/** No caching anywhere, and the page may run only its own inline script and reach only its own origin. */
const BASE_HEADERS = {
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
};
const PAGE_HEADERS = {
  ...BASE_HEADERS,
  'Content-Type': 'text/html; charset=utf-8',
  'Content-Security-Policy':
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
};

function json(status: number, value: unknown): ConsoleResponse {
  return {
    status,
    headers: { ...BASE_HEADERS, 'Content-Type': 'application/json; charset=utf-8' },
    body: JSON.stringify(value),
  };
}

/**
 * The console's routes, below its mount point `base` (e.g. `/console`):
 * `GET /` the page; `GET /api/state` what it shows; `POST /api/runs/{runId}/cancel` `{reason}`;
 * `POST /api/dead-letters/{id}/replay`. Actions need a JSON body and a same-origin request (a form
 * on another site cannot send one), the page's only protection: mount it where only developers reach.
 * @returns undefined when the path is none of the console's.
 */
export async function handleConsoleRequest(
  tracker: ConsoleTracker,
  base: string,
  req: ConsoleRequest,
): Promise<ConsoleResponse | undefined> {
  const path = req.path.replace(/\/+$/, '');
  try {
    if (req.method === 'GET' && path === '')
      return { status: 200, headers: PAGE_HEADERS, body: consolePage(base) };
    if (req.method === 'GET' && path === '/api/state') return json(200, await tracker.state());
    const cancel = /^\/api\/runs\/([^/]+)\/cancel$/.exec(path);
    const replay = /^\/api\/dead-letters\/([^/]+)\/replay$/.exec(path);
    if (req.method !== 'POST' || (!cancel && !replay)) return undefined;
    refuseForeign(req);
    if (cancel) {
      const reason = (req.body as { reason?: unknown } | undefined)?.reason;
      return json(
        200,
        await tracker.cancel(decodeURIComponent(cancel[1]), typeof reason === 'string' ? reason : ''),
      );
    }
    return json(200, await tracker.replay(decodeURIComponent(replay![1])));
  } catch (err) {
    if (err instanceof ConsoleRequestError) return json(err.status, { error: err.message });
    if (err instanceof URIError) return json(400, { error: 'malformed escape in the path' });
    return json(500, { error: (err as Error)?.message ?? String(err) });
  }
}

/** A POST must be JSON, and from the console's own origin when the browser says where it comes from. */
function refuseForeign(req: ConsoleRequest): void {
  const header = (name: string) => String([req.headers[name]].flat()[0] ?? '');
  if (!header('content-type').startsWith('application/json'))
    throw new ConsoleRequestError(415, 'send application/json');
  const origin = header('origin');
  // `null` is what a sandboxed frame of any site sends: never the console's own page.
  if (origin === 'null') throw new ConsoleRequestError(403, 'cross-origin request refused');
  if (origin) {
    let host: string;
    try {
      host = new URL(origin).host;
    } catch {
      host = '';
    }
    if (host !== header('host')) throw new ConsoleRequestError(403, 'cross-origin request refused');
  }
}
