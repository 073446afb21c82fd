import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import Ajv, { type AnySchema, type ErrorObject, type Options as AjvOptions } from 'ajv';
import Ajv2019 from 'ajv/dist/2019';
import Ajv2020 from 'ajv/dist/2020';
import type AjvCore from 'ajv/dist/core';
import {
  DriverMessage,
  Pipeline,
  PipelineStep,
  Resource,
  ResourceDefinition,
  encodeGoJson,
} from '@conveyor-ci/nestjs/internal';
import type { ControlPlaneStore } from './control-plane.store';

export interface ApiDeps {
  store: ControlPlaneStore;
  /** Publishes the resource's event as the server does (resources.{type} or pipelines.pipeline.init) and returns the new run id. */
  publishResourceEvent(resource: Resource<unknown>): Promise<string>;
  /** Core NATS publish (for POST /drivers/broadcast-message on subject `application`). */
  publishCore(subject: string, data: string): void;
}

const ROOT_TEXT = 'CONVEYOR API SERVER. Visit https://conveyor.open.ug for Documentation';
const TEXT_PLAIN = 'text/plain; charset=utf-8';
/** Fiber v2 `DefaultMethods`, in Fiber's order (which is also the order of a 405's `Allow` header). */
const FIBER_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'];

interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  body: Buffer;
  /** Route params, raw: Fiber v2 does not unescape paths (`UnescapePath: false`), so `a%20b` stays `a%20b`. */
  params: Record<string, string>;
  deps: ApiDeps;
}

type Handler = (ctx: Ctx) => void | Promise<void>;

interface Route {
  method: string;
  segments: string[];
  handler: Handler;
}

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
  res
    .writeHead(405, {
      'Content-Type': TEXT_PLAIN,
      Allow: FIBER_METHODS.filter((m) => allowed.has(m)).join(', '),
    })
    .end('Method Not Allowed');
  return true;
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
// Handlers (internal/handlers/*.go at @HEAD)
// ---------------------------------------------------------------------------------------------

function root({ res }: Ctx): void {
  text(res, 200, ROOT_TEXT);
}

/** Registered only by the CLI (`cmd/api/app.go`), not by `server.Setup` (contract §10.1). */
function health({ res }: Ctx): void {
  json(res, 200, { status: 'healthy', time: Math.floor(Date.now() / 1000) });
}

async function createResource({ req, res, body, deps }: Ctx): Promise<void> {
  let parsed: GoResource;
  try {
    parsed = bodyParser(req, body, decodeResource) as GoResource;
  } catch {
    return error(res, 400, 'Invalid request payload');
  }
  // `id` and `metadata` from the body are overwritten before any check (contract §10.1).
  const resource: GoResource = { ...parsed, id: randomUUID(), metadata: { version: '1' } };
  const type = resource.resource;
  if (type === '') return error(res, 400, 'Resource type is required');
  if (rejectSpec(res, deps, type, resource.spec)) return;
  if (resource.pipeline !== '') {
    const pipeline = deps.store.pipelines.get(resource.pipeline);
    // Server bug kept (§10.1): an unknown pipeline is 500, the 400 branch is dead (`GetPipeline` errors).
    if (!pipeline) return error(res, 500, 'Failed to get pipeline: pipeline not found');
    const pipelineType = pipeline.resource ?? '';
    if (pipelineType !== type) {
      return error(res, 400, `Resource type ${type} does not match pipeline resource type ${pipelineType}`);
    }
  }
  // Server bug kept (§10.1): a duplicate is 500, not 409.
  if (deps.store.getResource(type, resource.name)) {
    return error(
      res,
      500,
      `Failed to insert resource: resource with name ${resource.name} and type ${type} already exists`,
    );
  }
  const stored = goResource(resource);
  deps.store.putResource(stored);
  let runId: string;
  try {
    runId = await deps.publishResourceEvent(goResource(stored));
  } catch (err) {
    // Server bug kept (§6.1, §10.1): the resource was inserted before the publish and stays, so a retry is a duplicate.
    return error(res, 500, `Failed to publish resource event: ${errorText(err)}`);
  }
  json(res, 201, {
    message: 'Resource created successfully',
    name: resource.name,
    runid: runId,
    version: '1',
  });
}

/** Server bug kept (§10.1, §10.3): `GET /resources/` has no `:type` param, so it never lists anything. */
function listResources({ res }: Ctx): void {
  error(res, 400, 'Resource type is required');
}

function getResource({ res, params: { type, name }, deps }: Ctx): void {
  const found = deps.store.getResource(type, name);
  // Server bug kept (§10.1): not-found is 500 (the server's own test asserts it).
  if (!found) {
    return error(res, 500, `Failed to find resource: resource with name ${name} and type ${type} not found`);
  }
  json(res, 200, goResource(found));
}

function getResourceVersion({ res, params: { type, name, version }, deps }: Ctx): void {
  const found = deps.store.versions.get(`${type}/${name}/${version}`);
  // Server bug kept (§10.1): not-found is 500.
  if (!found) {
    return error(
      res,
      500,
      `Failed to find resource: resource with name ${name}, type ${type} and version ${version} not found`,
    );
  }
  json(res, 200, goResource(found));
}

function updateResource({ req, res, body, params: { type, name }, deps }: Ctx): void {
  let resource: GoResource;
  try {
    resource = bodyParser(req, body, decodeResource) as GoResource;
  } catch {
    return error(res, 400, 'Invalid request payload');
  }
  // The definition comes from the URL's type; the body's `resource` and `name` are never compared with the URL (§10.1).
  if (rejectSpec(res, deps, type, resource.spec)) return;
  const current = deps.store.getResource(type, name);
  if (!current) {
    // `ResourceModel.Update` wraps FindOne's error in "...not found: %v " (trailing space included).
    const notFound = `resource with name ${name} and type ${type} not found`;
    return error(res, 500, `Failed to update resource: ${notFound}: ${notFound} `);
  }
  const currentVersion = current.metadata?.version;
  const version = goAtoi(typeof currentVersion === 'string' ? currentVersion : '');
  if (typeof version === 'string') {
    return error(res, 500, `Failed to update resource: failed to parse version: ${version}`);
  }
  // Server bug kept (§10.1, §17 G17): metadata is the body's, so driverresults are lost unless echoed; `id` is kept.
  const updated = goResource({
    ...resource,
    id: typeof current.id === 'string' ? current.id : '',
    metadata: { ...(resource.metadata ?? {}), version: BigInt.asIntN(64, version + 1n).toString() },
  });
  deps.store.putResourceAt(type, name, updated);
  // Server bug kept (§6.1): PUT publishes no event.
  json(res, 200, goResource(updated));
}

/** Server bug kept (§10.1): 204 even when nothing was there; the versioned keys stay; no event. */
function deleteResource({ res, params: { type, name }, deps }: Ctx): void {
  deps.store.deleteResource(type, name);
  res.writeHead(204).end();
}

function createDefinition({ req, res, body, deps }: Ctx): void {
  let definition: ResourceDefinition;
  try {
    definition = bodyParser(req, body, decodeDefinition) as ResourceDefinition;
  } catch {
    return error(res, 400, 'Invalid request payload');
  }
  // Names are not validated (§10.2): an empty name is stored under the empty key, as in etcd.
  const stored = goDefinition({ ...definition, id: randomUUID() });
  // Server bug kept (§10.1): a duplicate is 500.
  if (deps.store.definitions.has(stored.name)) {
    return error(
      res,
      500,
      `Failed to insert resource definition: resource definition with name ${stored.name} already exists`,
    );
  }
  deps.store.definitions.set(stored.name, stored);
  json(res, 201, goDefinition(stored));
}

function applyDefinition({ req, res, body, deps }: Ctx): void {
  let definition: ResourceDefinition;
  try {
    definition = bodyParser(req, body, decodeDefinition) as ResourceDefinition;
  } catch {
    return error(res, 400, 'Invalid request payload');
  }
  if (definition.name === '') return error(res, 400, 'Resource name is required');
  // The document stored is the body as received (marshalled before any id is set).
  const stored = goDefinition(definition);
  if (deps.store.definitions.has(definition.name)) {
    // Server bug kept (§10.1): the body replaces the stored document, so the old id is lost.
    deps.store.definitions.set(definition.name, stored);
    return json(res, 201, goDefinition(definition));
  }
  deps.store.definitions.set(definition.name, stored);
  // Server bug kept (§10.1): on create the new id is in the response only, never persisted.
  json(res, 201, goDefinition({ ...definition, id: randomUUID() }));
}

function getDefinition({ res, params: { name }, deps }: Ctx): void {
  const found = deps.store.definitions.get(name);
  // Server bug kept (§10.1): not-found is 500.
  if (!found) {
    return error(
      res,
      500,
      `Failed to find resource definition: resource definition with name ${name} not found`,
    );
  }
  json(res, 200, goDefinition(found));
}

function updateDefinition({ req, res, body, params: { name }, deps }: Ctx): void {
  let definition: ResourceDefinition;
  try {
    definition = bodyParser(req, body, decodeDefinition) as ResourceDefinition;
  } catch {
    return error(res, 400, 'Invalid request payload');
  }
  // Server bug kept (§10.1): not-found is 500.
  if (!deps.store.definitions.has(name)) {
    return error(
      res,
      500,
      `Failed to update resource definition: resource definition with name ${name} not found`,
    );
  }
  // Stored under the URL's name whatever the body's `name` (and `id`) say, as `Update(name, body)` does.
  deps.store.definitions.set(name, goDefinition(definition));
  json(res, 200, goDefinition(definition));
}

function deleteDefinition({ res, params: { name }, deps }: Ctx): void {
  // Server bug kept (§10.1): not-found is 500 (unlike resources, the model checks existence first).
  if (!deps.store.definitions.has(name)) {
    return error(
      res,
      500,
      `Failed to delete resource definition: resource definition with name ${name} not found`,
    );
  }
  deps.store.definitions.delete(name);
  res.writeHead(204).end();
}

function createPipeline({ req, res, body, deps }: Ctx): void {
  let pipeline: GoPipeline;
  try {
    pipeline = bodyParser(req, body, decodePipeline) as GoPipeline;
  } catch {
    return error(res, 400, 'Invalid request payload');
  }
  // Server bug kept (§10.1): an unknown resource type is 500, the 404 branch is dead.
  if (!deps.store.definitions.has(pipeline.resource)) {
    return error(
      res,
      500,
      `Failed to find resource definition: resource definition with name ${pipeline.resource} not found`,
    );
  }
  // An upsert: `CreatePipeline` is an etcd Put (§10.1). Steps are not checked; without them the response has `"steps":null`.
  deps.store.pipelines.set(pipeline.name, storedPipeline(pipeline));
  json(res, 201, goPipeline(pipeline));
}

function broadcastMessage({ req, res, body, deps }: Ctx): void {
  let parsed: DriverMessage;
  try {
    parsed = bodyParser(req, body, decodeDriverMessage) as DriverMessage;
  } catch {
    return error(res, 400, 'could not parse request body');
  }
  // A new 24-hex id (§4), stored at `driver-messages/{id}`, then the message re-marshalled on core `application`.
  const message: DriverMessage = { ...parsed, id: randomBytes(12).toString('hex') };
  deps.store.driverMessages.set(message.id, message);
  try {
    deps.publishCore('application', encodeGoJson(message));
  } catch (err) {
    // The server answers `{"error": err.Error()}` here.
    return error(res, 500, errorText(err));
  }
  json(res, 200, { message: 'message published' });
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

// ---------------------------------------------------------------------------------------------
// Fiber v2 routing
// ---------------------------------------------------------------------------------------------

/** A Fiber route; `app.Get` also registers HEAD. Paths are lowercased and lose trailing slashes, as Fiber does. */
function route(method: string, path: string, handler: Handler): Route[] {
  const segments = detectionPath(path).split('/').slice(1);
  const methods = method === 'GET' ? ['HEAD', 'GET'] : [method];
  return methods.map((m) => ({ method: m, segments, handler }));
}

/** Fiber's `pathOriginal`: the request path as sent, without the query, not unescaped. */
function originalPath(req: IncomingMessage): string {
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
function detectionPath(path: string): string {
  const lower = path.replace(/[A-Z]/g, (c) => c.toLowerCase());
  return lower.length > 1 ? lower.replace(/\/+$/, '') : lower;
}

/** Matches `/a/:p/...` against the detection path; param values come from the original path (same offsets). */
function matchRoute(segments: string[], detection: string, path: string): Record<string, string> | undefined {
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

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'Content-Type': TEXT_PLAIN }).end(body);
}

/** Fiber `c.JSON` with Go's `encoding/json`: HTML-escaped strings; maps (e.g. `fiber.Map`) are built key-sorted. */
function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json' }).end(encodeGoJson(body));
}

function error(res: ServerResponse, status: number, message: string): void {
  json(res, status, { error: message });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// ---------------------------------------------------------------------------------------------
// Go decoding (Fiber `BodyParser` + `encoding/json` into the handler's struct) and encoding
// ---------------------------------------------------------------------------------------------

/** Where Go's `json.Unmarshal` into the handler's struct would return an error. */
class GoDecodeError extends Error {}

/** Decodes one JSON value into a Go field whose current value is `current`, as `encoding/json` does. */
type Decoder = (value: unknown, current: unknown) => unknown;

/**
 * Fiber v2 `BodyParser`: the decoder is picked from `Content-Type` (lowercased, vendor `+json`
 * folded, cut at `;`); any type ending in `json` is JSON. Anything else fails here. Fiber also parses
 * form and XML bodies into the struct; those are not supported, so they fail too.
 */
function bodyParser(req: IncomingMessage, body: Buffer, decode: Decoder): unknown {
  let type = vendorSpecificContentType((req.headers['content-type'] ?? '').toLowerCase());
  const semicolon = type.indexOf(';');
  if (semicolon !== -1) type = type.slice(0, semicolon);
  if (!type.endsWith('json')) throw new GoDecodeError('Unprocessable Entity');
  let raw: unknown;
  try {
    raw = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new GoDecodeError(errorText(err));
  }
  return decode(raw, undefined);
}

/** Fiber's `utils.ParseVendorSpecificContentType`: `application/vnd.x+json; a=b` → `application/json`. */
function vendorSpecificContentType(type: string): string {
  const plus = type.indexOf('+');
  if (plus === -1) return type;
  const semicolon = type.indexOf(';');
  let parsable: string;
  if (semicolon === -1) parsable = type.slice(plus + 1);
  else if (plus < semicolon) parsable = type.slice(plus + 1, semicolon);
  else return type.slice(0, semicolon);
  const slash = type.indexOf('/');
  return slash === -1 ? type : type.slice(0, slash + 1) + parsable;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const mismatch = (value: unknown, into: string) =>
  new GoDecodeError(
    `json: cannot unmarshal ${Array.isArray(value) ? 'array' : typeof value} into Go value of type ${into}`,
  );

/** A Go `string`: JSON null leaves it as it was. */
const goString: Decoder = (value, current) => {
  if (value === null) return current;
  if (typeof value !== 'string') throw mismatch(value, 'string');
  return value;
};

/** A Go `interface{}`: kept as is, except that objects become Go maps, which marshal with sorted keys. */
const goAny: Decoder = (value) => sortKeys(value);

/** A Go `map[string]string`: JSON null is a nil map; a null value is ""; decoding merges into an existing map. */
const goStringMap: Decoder = (value, current) => {
  if (value === null) return null;
  if (!isPlainObject(value)) throw mismatch(value, 'map[string]string');
  const entries = new Map(Object.entries(isPlainObject(current) ? current : {}));
  for (const [key, item] of Object.entries(value)) {
    if (item !== null && typeof item !== 'string') throw mismatch(item, 'string');
    entries.set(key, item ?? '');
  }
  return sortKeys(Object.fromEntries(entries));
};

/** A Go slice: JSON null is a nil slice, each element decoded into a zero value. */
function goSlice(element: Decoder): Decoder {
  return (value) => {
    if (value === null) return null;
    if (!Array.isArray(value)) throw mismatch(value, 'slice');
    return value.map((item) => element(item, undefined));
  };
}

/**
 * A Go struct: keys match fields exactly or else case-insensitively, unknown keys are ignored, JSON
 * null leaves it as it was. `zero` lists the fields in struct order with their zero values.
 */
function goStruct(fields: Record<string, Decoder>, zero: () => Record<string, unknown>): Decoder {
  const names = Object.keys(fields);
  return (value, current) => {
    const base = isPlainObject(current) ? current : zero();
    if (value === null) return base;
    if (!isPlainObject(value)) throw mismatch(value, 'struct');
    const out: Record<string, unknown> = { ...base };
    for (const [key, item] of Object.entries(value)) {
      const name = Object.hasOwn(fields, key)
        ? key
        : names.find((n) => n.toLowerCase() === key.toLowerCase());
      if (name !== undefined) out[name] = fields[name](item, out[name]);
    }
    return out;
  };
}

/** `types.Resource` as decoded (before `omitempty` drops an empty `pipeline` on output). */
interface GoResource {
  id: string;
  name: string;
  pipeline: string;
  resource: string;
  metadata: Record<string, string> | null;
  spec: unknown;
}

const decodeResource = goStruct(
  {
    id: goString,
    name: goString,
    pipeline: goString,
    resource: goString,
    metadata: goStringMap,
    spec: goAny,
  },
  () => ({ id: '', name: '', pipeline: '', resource: '', metadata: null, spec: null }),
);

const decodeDefinition = goStruct(
  { id: goString, name: goString, description: goString, version: goString, schema: goAny },
  () => ({ id: '', name: '', description: '', version: '', schema: null }),
);

const decodeStep = goStruct({ id: goString, name: goString, driver: goString }, () => ({
  id: '',
  name: '',
  driver: '',
}));

const decodePipeline = goStruct(
  {
    name: goString,
    description: goString,
    version: goString,
    resource: goString,
    steps: goSlice(decodeStep),
    metadata: goStringMap,
  },
  () => ({ name: '', description: '', version: '', resource: '', steps: null, metadata: null }),
);

const decodeDriverMessage = goStruct(
  { event: goString, payload: goString, id: goString, run_id: goString },
  () => ({ event: '', payload: '', id: '', run_id: '' }),
);

const str = (value: unknown): string => (typeof value === 'string' ? value : '');

/**
 * Objects with sorted keys, deeply, as Go marshals `map[string]…` (what any JSON object becomes in a
 * Go `interface{}`). JS still lists integer-like keys first; Go sorts them as strings.
 */
function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (!isPlainObject(value)) return value;
  return Object.fromEntries(
    Object.entries(value)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, item]) => [key, sortKeys(item)]),
  );
}

/** A fresh copy of a resource exactly as the server marshals `types.Resource` (field order, `omitempty`). */
function goResource(resource: Partial<Resource<unknown>> | GoResource): Resource<unknown> {
  const pipeline = str(resource.pipeline);
  return {
    id: str(resource.id),
    name: str(resource.name),
    ...(pipeline ? { pipeline } : {}),
    resource: str(resource.resource),
    metadata: resource.metadata == null ? null : (sortKeys(resource.metadata) as Record<string, unknown>),
    spec: sortKeys(resource.spec ?? null),
  };
}

/** A fresh copy of a definition as the server marshals `types.ResourceDefinition`. */
function goDefinition(definition: Partial<ResourceDefinition>): Required<ResourceDefinition> {
  return {
    id: str(definition.id),
    name: str(definition.name),
    description: str(definition.description),
    version: str(definition.version),
    schema: sortKeys(definition.schema ?? null),
  };
}

/** `types.Pipeline` as the server marshals it: `steps` and `metadata` are null when absent. */
interface GoPipeline extends Omit<Pipeline, 'steps' | 'metadata'> {
  steps: PipelineStep[] | null;
  metadata: Record<string, string> | null;
}

/** A fresh copy of a pipeline as the server marshals `types.Pipeline`. */
function goPipeline(pipeline: Partial<Pipeline> | GoPipeline): GoPipeline {
  const steps = Array.isArray(pipeline.steps)
    ? pipeline.steps.map((step: Partial<PipelineStep>) => ({
        id: str(step.id),
        name: str(step.name),
        driver: str(step.driver),
      }))
    : null;
  return {
    name: str(pipeline.name),
    description: str(pipeline.description),
    version: str(pipeline.version),
    resource: str(pipeline.resource),
    steps,
    metadata: pipeline.metadata == null ? null : (sortKeys(pipeline.metadata) as Record<string, string>),
  };
}

/**
 * The pipeline for the store, in the wire type: where etcd holds `null` steps or metadata, this holds
 * `[]` and no metadata, which the engine reads the same way (Go's `len(nil) == 0`, §6.2).
 */
function storedPipeline(pipeline: GoPipeline): Pipeline {
  const { steps, metadata, ...rest } = goPipeline(pipeline);
  return { ...rest, steps: steps ?? [], ...(metadata ? { metadata } : {}) };
}

/** Go `strconv.Atoi` on a 64-bit platform: the value, or the error text. */
function goAtoi(value: string): bigint | string {
  if (!/^[+-]?[0-9]+$/.test(value)) return `strconv.Atoi: parsing ${JSON.stringify(value)}: invalid syntax`;
  const n = BigInt(value);
  if (n !== BigInt.asIntN(64, n)) return `strconv.Atoi: parsing ${JSON.stringify(value)}: value out of range`;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Spec validation (`internal/utils/validator.go`: santhosh-tekuri/jsonschema v5, here ajv)
// ---------------------------------------------------------------------------------------------

type AjvClass = new (options: AjvOptions) => AjvCore;

/**
 * `$schema` URLs santhosh-tekuri/jsonschema v5 knows (its `findDraft`, after `http:`→`https:` and
 * dropping `#`), with the ajv class that validates them. ajv 8 has no draft-04/06 vocabulary, so those
 * are validated as draft-07, an approximation.
 */
const DRAFTS: Record<string, AjvClass> = {
  'https://json-schema.org/schema': Ajv2020,
  'https://json-schema.org/draft/2020-12/schema': Ajv2020,
  'https://json-schema.org/draft/2019-09/schema': Ajv2019,
  'https://json-schema.org/draft-07/schema': Ajv,
  'https://json-schema.org/draft-06/schema': Ajv,
  'https://json-schema.org/draft-04/schema': Ajv,
};

/**
 * `utils.ValidateResource` (contract §3.2): only `spec` is validated, against the definition's
 * `schema`. Returns undefined when valid, else what follows `Resource validation failed: `. The error
 * layout is the Go library's; its location part uses this process's cwd like the server's
 * `CompileString("inline-schema")` uses its own, and the leaf message is ajv's wording [I].
 * Non-schema keys (the docs' top-level `pipeline`) are ignored (`strict: false`). Formats are not
 * asserted: v5's default draft (2020-12) treats them as annotations (it does assert them for older
 * drafts, which this does not).
 */
function validateSpec(schema: unknown, spec: unknown): string | undefined {
  const location = pathToFileURL(resolve('inline-schema')).href;
  const compileError = (reason: string) =>
    `failed to compile schema: jsonschema ${location} compilation failed: ${reason}`;
  // v5's default draft when `$schema` is absent is 2020-12.
  let AjvForDraft: AjvClass = Ajv2020;
  let root = schema;
  if (isPlainObject(schema) && Object.hasOwn(schema, '$schema')) {
    const { $schema: declared, ...rest } = schema;
    if (typeof declared !== 'string') return compileError(`invalid $schema in ${location}`);
    const draft = DRAFTS[declared.replace(/^http:\/\//, 'https://').replace(/#\/?$/, '')];
    if (!draft) return compileError(`unsupported $schema ${declared}`); // [I] v5 would try to load it and fail
    AjvForDraft = draft;
    root = rest; // each ajv class knows its meta-schema under one spelling only; the class carries the draft
  }
  if (typeof root !== 'boolean' && !isPlainObject(root))
    return compileError('schema must be object or boolean');
  let validate: ReturnType<AjvCore['compile']>;
  try {
    validate = ajvFor(AjvForDraft).compile(root as AnySchema);
  } catch (err) {
    return compileError(errorText(err));
  }
  if (validate(spec)) return undefined;
  const [first] = validate.errors ?? [];
  if (!first) return `validation failed: jsonschema: '' does not validate with ${location}#`;
  const keyword = first.schemaPath.replace(/^#/, '');
  return `validation failed: jsonschema: ${goQuote(first.instancePath)} does not validate with ${location}#${keyword}: ${describe(first)}`;
}

const ajvInstances = new Map<AjvClass, AjvCore>();

/** One ajv per draft, emptied before each use: every definition compiles alone, and `$id`s never clash. */
function ajvFor(AjvForDraft: AjvClass): AjvCore {
  const cached = ajvInstances.get(AjvForDraft);
  if (cached) return cached.removeSchema(); // drops every schema but the meta-schemas, and the cache
  const ajv = new AjvForDraft({ strict: false, allErrors: false, validateFormats: false });
  ajvInstances.set(AjvForDraft, ajv);
  return ajv;
}

function describe(error: ErrorObject): string {
  const message = error.message ?? `${error.keyword} failed`;
  const extra = (error.params as { additionalProperty?: string }).additionalProperty;
  return extra === undefined ? message : `${message}: '${extra}'`;
}

/** The v5 library's `quote`: Go `%q`, with single quotes outside. */
function goQuote(value: string): string {
  const inner = JSON.stringify(value).slice(1, -1).replace(/\\"/g, '"').replace(/'/g, "\\'");
  return `'${inner}'`;
}

/**
 * The definition lookup and `spec` validation shared by POST and PUT (contract §10.1). Answers and
 * returns true when the resource is refused.
 */
function rejectSpec(res: ServerResponse, deps: ApiDeps, type: string, spec: unknown): boolean {
  const definition = deps.store.definitions.get(type);
  // Server bug kept (§10.1): an unknown type is 500, the 404 branch is dead (`FindOne` returns an error).
  if (!definition) {
    error(res, 500, `Failed to find resource definition: resource definition with name ${type} not found`);
    return true;
  }
  if (definition.schema == null) {
    error(res, 400, 'Resource definition schema is required');
    return true;
  }
  const invalid = validateSpec(definition.schema, spec);
  if (invalid === undefined) return false;
  error(res, 400, `Resource validation failed: ${invalid}`);
  return true;
}
