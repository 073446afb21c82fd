import { ErrorCode } from 'nats';
import { DriverResult, Resource, encodePipelineEvent } from '../protocol';
import { Settlement, oversizeResult, unencodableResult } from './settlement.policy';

/** A result publish the server refused for good: retrying the same bytes cannot help. */
export class ResultRefusedError extends Error {
  constructor(
    message: string,
    /** Why, as a bounded label for metrics. */
    override readonly cause: 'max-payload' | 'no-stream' | 'permission' | 'rejected',
  ) {
    super(message);
    this.name = 'ResultRefusedError';
  }
}

/** What a result is published for: the run, its resource, and the `Nats-Msg-Id` that de-duplicates it. */
export interface ResultTarget {
  runId: string;
  /**
   * The resource the result carries: for a decoded message its JSON text exactly as received (put
   * in the result as it is, whatever the handler did to its own copy), else an object.
   */
  resource: Resource | string;
  msgId: string;
}

/** The bytes to publish for a settlement, or the settlement that must replace it. */
export type EncodedResult =
  | { kind: 'bytes'; bytes: Uint8Array }
  | { kind: 'replaced'; settlement: Settlement; bytes: Uint8Array }
  | { kind: 'refused'; reason: string };

/** `Nats-Msg-Id` header and the NATS/1.0 preamble count against `max_payload` too. */
function headerBytes(msgId: string): number {
  return 'NATS/1.0\r\nNats-Msg-Id: \r\n\r\n'.length + Buffer.byteLength(msgId) + 16;
}

/** The fields the engine reads from a result's resource (contract §6.2): enough to record a failure. */
export function essentialResource(received: Resource | string): Resource {
  const resource = typeof received === 'string' ? (JSON.parse(received) as Resource) : received;
  return {
    id: resource.id,
    name: resource.name,
    ...(resource.pipeline !== undefined ? { pipeline: resource.pipeline } : {}),
    resource: resource.resource,
    metadata: {},
    spec: null,
  } as Resource;
}

/**
 * Encodes the PipelineEvent for `result`, making sure it can be published: data that cannot be
 * JSON-encoded becomes a failure result saying so; a result above `maxPayload` becomes a failure
 * result that fits (data dropped, then the resource cut to the fields the engine reads). `refused`
 * only when not even that fits.
 */
export function encodeResult(
  target: ResultTarget,
  result: DriverResult,
  driver: string,
  maxPayload: number,
): EncodedResult {
  const limit = maxPayload - headerBytes(target.msgId);
  let replacement: Settlement | undefined;
  let bytes: Uint8Array;
  try {
    bytes = encodePipelineEvent(target.runId, target.resource, result, driver);
  } catch (err) {
    // A cycle, a BigInt or a throwing toJSON in `data`: the handler's answer cannot travel at all.
    replacement = unencodableResult(err);
    bytes = encodePipelineEvent(target.runId, target.resource, replacement.result!, driver);
  }
  if (bytes.length > limit) {
    replacement = oversizeResult(bytes.length, maxPayload);
    bytes = encodePipelineEvent(target.runId, target.resource, replacement.result!, driver);
    if (bytes.length > limit) {
      const cut = essentialResource(target.resource);
      replacement.result!.message += ' (resource spec and metadata dropped too)';
      bytes = encodePipelineEvent(target.runId, cut, replacement.result!, driver);
    }
    if (bytes.length > limit) {
      return {
        kind: 'refused',
        reason: `even a failure result is ${bytes.length} bytes, above max_payload ${maxPayload}`,
      };
    }
  }
  return replacement ? { kind: 'replaced', settlement: replacement, bytes } : { kind: 'bytes', bytes };
}

/** How a failed publish is handled: retried while heartbeating, or settled now. */
export type PublishErrorClass = 'transient' | ResultRefusedError['cause'];

/** JetStream API error codes that no retry of the same message can fix (nats-server `errors.json`). */
const REFUSED_API_CODES: Record<number, ResultRefusedError['cause']> = {
  10054: 'max-payload', // message size exceeds maximum allowed (the stream's max_msg_size)
  10060: 'rejected', // expected stream does not match
  10070: 'rejected', // wrong last msg id
  10071: 'rejected', // wrong last sequence
};

/**
 * Classifies a publish error. Timeouts, no responders (JetStream restarting or electing a leader)
 * and disconnects are transient; an oversize message, a permission error or a rule of the stream
 * are permanent. A no-responders answer is only known to mean "no stream for the subject" after
 * asking the server, which the NATS port does.
 */
export function classifyPublishError(err: unknown): PublishErrorClass {
  if (err instanceof ResultRefusedError) return err.cause;
  const code = (err as { code?: string } | undefined)?.code;
  if (code === ErrorCode.MaxPayloadExceeded) return 'max-payload';
  if (code === ErrorCode.PermissionsViolation || code === ErrorCode.AuthorizationViolation)
    return 'permission';
  const apiCode = (err as { api_error?: { err_code?: number } } | undefined)?.api_error?.err_code;
  if (apiCode !== undefined && REFUSED_API_CODES[apiCode]) return REFUSED_API_CODES[apiCode];
  return 'transient';
}
