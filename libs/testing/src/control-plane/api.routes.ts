import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  applyDefinition,
  createDefinition,
  deleteDefinition,
  getDefinition,
  updateDefinition,
} from './definition.routes';
import {
  ApiDeps,
  Ctx,
  FIBER_METHODS,
  Route,
  TEXT_PLAIN,
  detectionPath,
  json,
  matchRoute,
  originalPath,
  route,
  send,
  text,
} from './fiber-http';
import { broadcastMessage, createPipeline } from './pipeline.routes';
import {
  createResource,
  deleteResource,
  getResource,
  getResourceVersion,
  listResources,
  updateResource,
} from './resource.routes';

export { fiberCors, fiberNotFound, readBody, type ApiDeps } from './fiber-http';

const ROOT_TEXT = 'CONVEYOR API SERVER. Visit https://conveyor.open.ug for Documentation';

/**
 * Handles the resource, resource-definition, pipeline, broadcast, `/`, `/health` routes of the
 * Conveyor 0.6.x API (contract §10.1) with the server's status codes, texts and quirks. Routing is
 * Fiber v2's defaults (contract §10.2): non-strict (trailing slashes ignored), case-insensitive
 * static parts, params taken raw from the path, and a path routed only for other methods answers
 * 405. Returns false when the path is not one of them (the caller then tries other routes or
 * answers Fiber's 404).
 */
export async function handleApiRoute(
  req: IncomingMessage,
  res: ServerResponse,
  body: Buffer,
  deps: ApiDeps,
): Promise<boolean> {
  const method = req.method ?? 'GET';
  // Fiber answers an unknown method before routing: left to fiberNotFound, which knows no route either.
  if (!FIBER_METHODS.includes(method)) return false;
  const path = originalPath(req);
  const detection = detectionPath(path);
  const allowed = new Set<string>();
  for (const route of ROUTES) {
    const params = matchRoute(route.segments, detection, path);
    if (!params) continue;
    if (route.method === method) {
      await route.handler({ req, res, body, params, deps });
      return true;
    }
    allowed.add(route.method);
  }
  if (allowed.size === 0) return false;
  // [I] Fiber v2 `methodExist`: a path routed for other methods only is 405 with `Allow`, not 404.
  send(
    res,
    405,
    { 'Content-Type': TEXT_PLAIN, Allow: FIBER_METHODS.filter((m) => allowed.has(m)).join(', ') },
    'Method Not Allowed',
  );
  return true;
}

function root({ res }: Ctx): void {
  text(res, 200, ROOT_TEXT);
}

/** Registered only by the CLI (`cmd/api/app.go`), not by `server.Setup` (contract §10.1). */
function health({ res }: Ctx): void {
  json(res, 200, { status: 'healthy', time: Math.floor(Date.now() / 1000) });
}

/**
 * The routes of `pkg/server/api.go`, `internal/routes/*.go` and `cmd/api/app.go`, in registration
 * order (`/swagger/*`, `/metrics` and `/logs*` are served elsewhere or not at all).
 */
const ROUTES: Route[] = [
  ...route('GET', '/', root),
  ...route('POST', '/drivers/broadcast-message', broadcastMessage),
  ...route('POST', '/resources/', createResource),
  ...route('GET', '/resources/:type/:name', getResource),
  ...route('DELETE', '/resources/:type/:name', deleteResource),
  ...route('PUT', '/resources/:type/:name', updateResource),
  ...route('GET', '/resources/:type/:name/:version', getResourceVersion),
  ...route('GET', '/resources/', listResources),
  ...route('POST', '/resource-definitions/', createDefinition),
  ...route('POST', '/resource-definitions/apply', applyDefinition),
  ...route('GET', '/resource-definitions/:name', getDefinition),
  ...route('DELETE', '/resource-definitions/:name', deleteDefinition),
  ...route('PUT', '/resource-definitions/:name', updateDefinition),
  // Server bug kept (§10.1): only POST is routed; GET/PUT/DELETE /pipelines/:name get Fiber's 404.
  ...route('POST', '/pipelines/', createPipeline),
  ...route('GET', '/health', health),
];
