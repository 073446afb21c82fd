import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Resource, encodeGoJson } from '@conveyor-ci/nestjs/internal';
import type { ControlPlaneStore } from './control-plane.store';

// Fiber v2's request side (routing, body reading, 404) and response helpers, shared by the route files.

export interface ApiDeps {
  store: ControlPlaneStore;
  /** Publishes the resource's event as the server does (resources.{type} or pipelines.pipeline.init) and returns the new run id. */
  publishResourceEvent(resource: Resource<unknown>): Promise<string>;
  /** Core NATS publish (for POST /drivers/broadcast-message on subject `application`). */
  publishCore(subject: string, data: string): void;
}

export const TEXT_PLAIN = 'text/plain; charset=utf-8';
/** Fiber v2 `DefaultMethods`, in Fiber's order (which is also the order of a 405's `Allow` header). */
export const FIBER_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'];

export interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  body: Buffer;
  /** Route params, raw: Fiber v2 does not unescape paths (`UnescapePath: false`), so `a%20b` stays `a%20b`. */
  params: Record<string, string>;
  deps: ApiDeps;
}

export type Handler = (ctx: Ctx) => void | Promise<void>;

export interface Route {
  method: string;
  segments: string[];
  handler: Handler;
}

/** The whole request body (the routes parse it themselves, as Fiber's BodyParser does). */
export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * Fiber's default 404 for an unrouted path: 404 text/plain `Cannot ${method} ${path}`, the raw path
 * HTML-escaped as Fiber does. A method Fiber does not know is 400 `Invalid http method` instead.
 */
export function fiberNotFound(req: IncomingMessage, res: ServerResponse): void {
  const method = req.method ?? 'GET';
  if (!FIBER_METHODS.includes(method)) return text(res, 400, 'Invalid http method');
  text(res, 404, `Cannot ${method} ${escapeHtml(originalPath(req))}`);
}

// ---------------------------------------------------------------------------------------------
// Fiber v2 routing
// ---------------------------------------------------------------------------------------------

/** A Fiber route; `app.Get` also registers HEAD. Paths are lowercased and lose trailing slashes, as Fiber does. */
export function route(method: string, path: string, handler: Handler): Route[] {
  const segments = detectionPath(path).split('/').slice(1);
  const methods = method === 'GET' ? ['HEAD', 'GET'] : [method];
  return methods.map((m) => ({ method: m, segments, handler }));
}

/** Fiber's `pathOriginal`: the request path as sent, without the query, not unescaped. */
export function originalPath(req: IncomingMessage): string {
  const url = req.url ?? '/';
  if (!url.startsWith('/')) {
    try {
      return new URL(url).pathname; // absolute-form request target
    } catch {
      return url;
    }
  }
  const end = url.search(/[?#]/);
  return end === -1 ? url : url.slice(0, end);
}

/** Fiber's `detectionPath`: ASCII-lowercased (CaseSensitive: false), trailing slashes trimmed (StrictRouting: false). */
export function detectionPath(path: string): string {
  const lower = path.replace(/[A-Z]/g, (c) => c.toLowerCase());
  return lower.length > 1 ? lower.replace(/\/+$/, '') : lower;
}

/** Matches `/a/:p/...` against the detection path; param values come from the original path (same offsets). */
export function matchRoute(
  segments: string[],
  detection: string,
  path: string,
): Record<string, string> | undefined {
  const parts = detection.split('/').slice(1);
  const rawParts = path.slice(0, detection.length).split('/').slice(1);
  if (parts.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (const [i, segment] of segments.entries()) {
    if (segment.startsWith(':')) {
      if (parts[i] === '') return undefined; // a required param never matches an empty segment
      params[segment.slice(1)] = rawParts[i];
    } else if (segment !== parts[i]) {
      return undefined;
    }
  }
  return params;
}

/** Go's `html.EscapeString`, which Fiber applies to the path in its 404 text. */
function escapeHtml(value: string): string {
  const escapes: Record<string, string> = {
    '<': '&lt;',
    '>': '&gt;',
    '&': '&amp;',
    "'": '&#39;',
    '"': '&#34;',
  };
  return value.replace(/[<>&'"]/g, (c) => escapes[c]);
}

/**
 * A whole response framed as fasthttp frames it: `Content-Length`, never chunked, and no
 * `Keep-Alive: timeout=` header (contract §10.2a). Node's `writeHead(...).end(body)` would send the
 * headers before it knows the length, and so chunk; and Node adds `Keep-Alive` unless the response
 * names its own `Connection`, so a kept-alive connection is named here (the socket still closes
 * when idle, as Node's server decides; a client cannot tell).
 */
export function send(
  res: ServerResponse,
  status: number,
  headers: Record<string, string>,
  body: string | Buffer = '',
): void {
  res
    .writeHead(status, {
      ...headers,
      'Content-Length': String(Buffer.byteLength(body)),
      ...(res.shouldKeepAlive ? { Connection: 'keep-alive' } : {}),
    })
    .end(body);
}

export function text(res: ServerResponse, status: number, body: string): void {
  send(res, status, { 'Content-Type': TEXT_PLAIN }, body);
}

/** Fiber `c.JSON` with Go's `encoding/json`: HTML-escaped strings; maps (e.g. `fiber.Map`) are built key-sorted. */
export function json(res: ServerResponse, status: number, body: unknown): void {
  send(res, status, { 'Content-Type': 'application/json' }, encodeGoJson(body));
}

/** Fiber v2 `cors.Config` defaults: `AllowMethods`, sent as is on a preflight. */
export const CORS_ALLOW_METHODS = 'GET,POST,HEAD,PUT,DELETE,PATCH';

/**
 * The server's first middleware, Fiber v2.52's `cors.New()` with its defaults (`AllowOrigins: "*"`,
 * no credentials, no AllowHeaders, no MaxAge). A request without `Origin` is left alone. With one,
 * a preflight (OPTIONS with `Access-Control-Request-Method`) is answered here, 204, before routing
 * and before the JWT middleware; any other request gets `Access-Control-Allow-Origin: *` on
 * whatever answer follows, errors included. Returns true when it answered.
 */
export function fiberCors(req: IncomingMessage, res: ServerResponse): boolean {
  if (!req.headers.origin) return false;
  res.setHeader('Access-Control-Allow-Origin', '*');
  if (req.method !== 'OPTIONS' || !req.headers['access-control-request-method']) return false;
  res.setHeader('Vary', 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers');
  res.setHeader('Access-Control-Allow-Methods', CORS_ALLOW_METHODS);
  // No AllowHeaders configured: Fiber echoes the headers the browser asks for.
  const requested = req.headers['access-control-request-headers'];
  if (requested) res.setHeader('Access-Control-Allow-Headers', requested);
  res.writeHead(204).end();
  return true;
}

export function error(res: ServerResponse, status: number, message: string): void {
  json(res, status, { error: message });
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
