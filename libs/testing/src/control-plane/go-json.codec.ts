import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Pipeline, PipelineStep, Resource, ResourceDefinition } from '@conveyor-ci/nestjs/internal';
import { error, errorText } from './fiber-http';

// ---------------------------------------------------------------------------------------------
// Go decoding (Fiber `BodyParser` + `encoding/json` into the handler's struct) and encoding
// ---------------------------------------------------------------------------------------------

/** Where Go's `json.Unmarshal` into the handler's struct would return an error. */
export class GoDecodeError extends Error {}

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

/**
 * The handler's `c.BodyParser(&value)`: the decoded body, or undefined after answering 400 with the
 * handler's message (most say `Invalid request payload`).
 */
export function decodeBody<T>(
  { req, res, body }: { req: IncomingMessage; res: ServerResponse; body: Buffer },
  decode: Decoder,
  invalidMessage = 'Invalid request payload',
): T | undefined {
  try {
    return bodyParser(req, body, decode) as T;
  } catch {
    error(res, 400, invalidMessage);
    return undefined;
  }
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

export function isPlainObject(value: unknown): value is Record<string, unknown> {
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
export interface GoResource {
  id: string;
  name: string;
  pipeline: string;
  resource: string;
  metadata: Record<string, string> | null;
  spec: unknown;
}

export const decodeResource = goStruct(
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

export const decodeDefinition = goStruct(
  { id: goString, name: goString, description: goString, version: goString, schema: goAny },
  () => ({ id: '', name: '', description: '', version: '', schema: null }),
);

const decodeStep = goStruct({ id: goString, name: goString, driver: goString }, () => ({
  id: '',
  name: '',
  driver: '',
}));

export const decodePipeline = goStruct(
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

export const decodeDriverMessage = goStruct(
  { event: goString, payload: goString, id: goString, run_id: goString },
  () => ({ event: '', payload: '', id: '', run_id: '' }),
);

/** `types.Log` (contract §3.7): what the logs engine decodes a `logs.>` line into before storing it. */
export const decodeLog = goStruct(
  { runid: goString, driver: goString, pipeline: goString, timestamp: goString, message: goString },
  () => ({ runid: '', driver: '', pipeline: '', timestamp: '', message: '' }),
);

const goBool: Decoder = (value, current) => {
  if (value === null) return current;
  if (typeof value !== 'boolean') throw mismatch(value, 'bool');
  return value;
};

/**
 * The engine's `DriverResultEvent` struct (`internal/engine/driver_result.go`): `success`, `message`,
 * `data` (an `interface{}`, so objects become maps and re-encode key-sorted), `driver`, in that
 * order. `SaveDriverResult` marshals it as the `driverresults.<driver>` value.
 */
export const decodeDriverResult = goStruct(
  { success: goBool, message: goString, data: goAny, driver: goString },
  () => ({ success: false, message: '', data: null, driver: '' }),
);

const str = (value: unknown): string => (typeof value === 'string' ? value : '');

/**
 * Objects with sorted keys, deeply, as Go marshals `map[string]…` (what any JSON object becomes in a
 * Go `interface{}`). JS still lists integer-like keys first; Go sorts them as strings.
 */
export function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (!isPlainObject(value)) return value;
  return Object.fromEntries(
    Object.entries(value)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, item]) => [key, sortKeys(item)]),
  );
}

/** A fresh copy of a resource exactly as the server marshals `types.Resource` (field order, `omitempty`). */
export function goResource(resource: Partial<Resource<unknown>> | GoResource): Resource<unknown> {
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
export function goDefinition(definition: Partial<ResourceDefinition>): Required<ResourceDefinition> {
  return {
    id: str(definition.id),
    name: str(definition.name),
    description: str(definition.description),
    version: str(definition.version),
    schema: sortKeys(definition.schema ?? null),
  };
}

/** `types.Pipeline` as the server marshals it: `steps` and `metadata` are null when absent. */
export interface GoPipeline extends Omit<Pipeline, 'steps' | 'metadata'> {
  steps: PipelineStep[] | null;
  metadata: Record<string, string> | null;
}

/** A fresh copy of a pipeline as the server marshals `types.Pipeline`. */
export function goPipeline(pipeline: Partial<Pipeline> | GoPipeline): GoPipeline {
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
export function storedPipeline(pipeline: GoPipeline): Pipeline {
  const { steps, metadata, ...rest } = goPipeline(pipeline);
  return { ...rest, steps: steps ?? [], ...(metadata ? { metadata } : {}) };
}

/** Go `strconv.Atoi` on a 64-bit platform: the value, or the error text. */
export function goAtoi(value: string): bigint | string {
  if (!/^[+-]?[0-9]+$/.test(value)) return `strconv.Atoi: parsing ${JSON.stringify(value)}: invalid syntax`;
  const n = BigInt(value);
  if (n !== BigInt.asIntN(64, n)) return `strconv.Atoi: parsing ${JSON.stringify(value)}: value out of range`;
  return n;
}
