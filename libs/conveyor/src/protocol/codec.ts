import type { ConveyorLog, DriverMessage, DriverResult, PipelineEvent, Resource } from './wire.types';
import { RESULT_EVENT, isSubjectToken } from './subjects';

/**
 * Why a message could not be decoded. `runId` and `resource` are set when they were readable, so the
 * caller can still report a failure result for the run (the Go runtime publishes nothing and the
 * pipeline hangs forever: contract §17 G6).
 */
export class MalformedMessageError extends Error {
  constructor(
    readonly reason: string,
    readonly runId?: string,
    readonly resource?: Resource,
  ) {
    super(reason);
    this.name = 'MalformedMessageError';
  }
}

/** A decoded DriverMessage with its resource parsed once. */
export interface DecodedMessage {
  message: DriverMessage;
  resource: Resource;
  /** The resource as a JSON string, exactly as the server sent it (Go `Reconcile(payload, …)` parity). */
  payload: string;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new MalformedMessageError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

/** Validates the fields every Resource must carry; tolerant about metadata (any JSON) and spec. */
function asResource(value: unknown, runId: string | undefined): Resource {
  if (!isPlainObject(value))
    throw new MalformedMessageError('payload is not a JSON object (a Resource)', runId);
  if (typeof value.name !== 'string' || value.name === '') {
    throw new MalformedMessageError('payload is not a Resource: "name" is missing or not a string', runId);
  }
  if (!isSubjectToken(value.resource)) {
    throw new MalformedMessageError(
      'payload is not a Resource: "resource" (the resource type) is missing or not subject-safe',
      runId,
    );
  }
  if (value.metadata !== undefined && value.metadata !== null && !isPlainObject(value.metadata)) {
    // Name and type are readable: enough for the engine to record a failure for this step.
    const known = {
      ...(typeof value.id === 'string' ? { id: value.id } : {}),
      name: value.name,
      ...(typeof value.pipeline === 'string' ? { pipeline: value.pipeline } : {}),
      resource: value.resource,
      metadata: {},
      spec: null,
    } as unknown as Resource;
    throw new MalformedMessageError('payload is not a Resource: "metadata" is not an object', runId, known);
  }
  return value as unknown as Resource;
}

/**
 * Decodes a DriverMessage `{event, payload, id, run_id}` as the server publishes it (contract §3.4).
 * Accepts `payload` as a JSON string (what 0.6.x sends) or an object (the SDD's model); unknown keys
 * are ignored like Go's decoder does.
 * @throws MalformedMessageError with a reason fit for a dead-letter record.
 */
export function decodeDriverMessage(data: Uint8Array | string): DecodedMessage {
  let text: string;
  try {
    text = typeof data === 'string' ? data : decoder.decode(data);
  } catch {
    throw new MalformedMessageError('message is not valid UTF-8');
  }
  const raw = parseJson(text, 'message');
  if (!isPlainObject(raw)) throw new MalformedMessageError('message is not a JSON object');
  const runId = isSubjectToken(raw.run_id) ? raw.run_id : undefined;
  if (runId === undefined) {
    throw new MalformedMessageError(
      raw.run_id === undefined ? 'message has no "run_id"' : 'message "run_id" is not a subject-safe string',
    );
  }
  // The resource is read before `event` and `id`, so a message broken only there can still get a
  // failure result for its run (the pipeline learns it failed instead of hanging: contract §17 G6).
  let payload: string;
  let parsed: unknown;
  if (typeof raw.payload === 'string') {
    payload = raw.payload;
    try {
      parsed = JSON.parse(payload);
    } catch (err) {
      throw new MalformedMessageError(`payload is not valid JSON: ${(err as Error).message}`, runId);
    }
  } else if (isPlainObject(raw.payload)) {
    parsed = raw.payload;
    payload = encodeGoJson(raw.payload);
  } else {
    throw new MalformedMessageError('message "payload" is missing or neither a string nor an object', runId);
  }
  const resource = asResource(parsed, runId);
  if (typeof raw.event !== 'string')
    throw new MalformedMessageError('message "event" is missing or not a string', runId, resource);
  if (typeof raw.id !== 'string' || !/^[\x21-\x7e]{1,128}$/.test(raw.id)) {
    throw new MalformedMessageError('message "id" is missing or not a printable string', runId, resource);
  }
  const message: DriverMessage = {
    event: raw.event,
    payload: raw.payload as DriverMessage['payload'],
    id: raw.id,
    run_id: runId,
  };
  return { message, resource, payload };
}

const GO_ESCAPES: Record<string, string> = {
  '<': '\\u003c',
  '>': '\\u003e',
  '&': '\\u0026',
  '\u2028': '\\u2028',
  '\u2029': '\\u2029',
};

/**
 * `JSON.stringify` with Go `encoding/json`'s HTML escaping of `<`, `>`, `&`, U+2028 and U+2029, so
 * what we publish is byte-identical to what a Go driver would. Those characters can only occur
 * inside JSON strings, where the escape is equivalent, so a plain replace is safe.
 */
export function encodeGoJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => GO_ESCAPES[c]);
}

/** Builds the PipelineEvent a driver publishes after a reconcile, with every key the engine reads (§3.6). */
export function toPipelineEvent(
  runId: string,
  resource: Resource,
  result: DriverResult,
  driver: string,
): PipelineEvent {
  return {
    event: RESULT_EVENT,
    run_id: runId,
    resource,
    driverresult: driverResultOf(result, driver),
  };
}

function driverResultOf(result: DriverResult, driver: string): PipelineEvent['driverresult'] {
  return {
    success: result.success,
    message: result.message ?? '',
    data: result.data === undefined ? null : result.data,
    driver,
  };
}

const RESULT_HEAD = `{"event":${encodeGoJson(RESULT_EVENT)},"run_id":`;

/**
 * UTF-8 bytes of the PipelineEvent {@link toPipelineEvent} builds, as {@link encodeWire} encodes it.
 * A resource given as JSON text (the payload as the server sent it, one JSON value, as
 * {@link decodeDriverMessage} checked) goes in as it is: not parsed and encoded again, and unchanged
 * by whatever a handler did to its own copy.
 */
export function encodePipelineEvent(
  runId: string,
  resource: Resource | string,
  result: DriverResult,
  driver: string,
): Uint8Array {
  if (typeof resource !== 'string') return encodeWire(toPipelineEvent(runId, resource, result, driver));
  const driverresult = encodeGoJson(driverResultOf(result, driver));
  return Buffer.from(
    `${RESULT_HEAD}${encodeGoJson(runId)},"resource":${resource},"driverresult":${driverresult}}`,
    'utf8',
  );
}

/**
 * The Log JSON (contract §3.7) of one line is `{head}{timestamp}{LOG_LINE_MIDDLE}{text}{LOG_LINE_TAIL}`,
 * identical to `encodeGoJson({runid, driver, pipeline, timestamp, message})`: the head is made once
 * per run by {@link logLineHead}, `text` is {@link logMessageText}, and the timestamp (digits and
 * `-:.TZ`) needs no escaping. Lines are written from these parts straight into NATS frames.
 */
export function logLineHead(log: Pick<ConveyorLog, 'runid' | 'driver' | 'pipeline'>): string {
  return `${encodeGoJson({ runid: log.runid, driver: log.driver, pipeline: log.pipeline }).slice(0, -1)},"timestamp":"`;
}

export const LOG_LINE_MIDDLE = '","message":"';
export const LOG_LINE_TAIL = '"}';

/** What goes between the quotes of `"message"`: the message, escaped as Go escapes it when it must be. */
export function logMessageText(message: string): string {
  // Most lines need no escaping at all: one scan instead of JSON.stringify and a replace.
  return NEEDS_ESCAPE.test(message) ? encodeGoJson(message).slice(1, -1) : message;
}

/** What JSON.stringify escapes in a string (quote, backslash, control characters, lone surrogates) and Go also escapes. */
// eslint-disable-next-line no-control-regex -- control characters are exactly what must be escaped
const NEEDS_ESCAPE = /["\\\x00-\x1f<>&\u2028\u2029\ud800-\udfff]/;

/** UTF-8 bytes of `encodeGoJson(value)`. */
export function encodeWire(value: unknown): Uint8Array {
  // Buffer.from beats TextEncoder for the short strings of log lines and results (pooled memory).
  return Buffer.from(encodeGoJson(value), 'utf8');
}
