/**
 * Stream names and subjects of Conveyor 0.6.x (wire contract §5). Builders validate every name that
 * ends up in a subject: the server validates none of them (contract §10.2) and a `.`, `*` or `>`
 * inside a token would silently widen or split a subject.
 */

/** Interest-retention stream the drivers consume from. Owned by the server: never create or alter it. */
export const MESSAGES_STREAM = 'messages';
/** Work-queue streams owned by the server's engine: drivers must never add consumers to them (§5.1). */
export const PIPELINE_ENGINE_STREAM = 'pipeline-engine';
export const LOGS_ENGINE_STREAM = 'logs-engine';

/** Where every driver result goes (contract §5.2). */
export const RESULT_SUBJECT = 'pipelines.driver.result';
/** `event` of a result published by a driver runtime (contract §3.6). */
export const RESULT_EVENT = 'driver.result';

// Control characters would corrupt the protocol line of a NATS PUB; the rest widen or split a subject (or an etcd key).
// eslint-disable-next-line no-control-regex
const UNSAFE_TOKEN = /[\s.*>/\\\u0000-\u001f\u007f]/;

/** Thrown when a name cannot be used as a single NATS subject token. */
export class InvalidSubjectTokenError extends Error {
  constructor(
    readonly what: string,
    readonly value: unknown,
  ) {
    super(
      `${what} ${JSON.stringify(value)} cannot be used in a NATS subject: ` +
        'it must be a non-empty string without whitespace, ".", "*", ">", "/" or "\\"',
    );
    this.name = 'InvalidSubjectTokenError';
  }
}

/** True when `value` is safe as one NATS subject token (and as an etcd key segment). */
export function isSubjectToken(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= 255 && !UNSAFE_TOKEN.test(value);
}

/** Returns `value` when it is a safe subject token, else throws {@link InvalidSubjectTokenError} naming `what`. */
export function assertSubjectToken(what: string, value: unknown): string {
  if (!isSubjectToken(value)) throw new InvalidSubjectTokenError(what, value);
  return value;
}

/** True when `value` is a subject one can publish to: dot-separated safe tokens, no wildcards. */
export function isPublishSubject(value: unknown): value is string {
  return (
    typeof value === 'string' &&
    value.length <= 1024 &&
    value.split('.').every((token) => isSubjectToken(token))
  );
}

/** `resources.{resource}`: direct resource events, fanned out to every driver of that resource. */
export function resourceSubject(resource: string): string {
  return `resources.${assertSubjectToken('resource', resource)}`;
}

/** `drivers.{driver}.resources.{resource}`: one pipeline step addressed to one driver. */
export function pipelineStepSubject(driver: string, resource: string): string {
  return `drivers.${assertSubjectToken('driver name', driver)}.resources.${assertSubjectToken('resource', resource)}`;
}

/** The two filter subjects a driver's consumer needs for each resource it reconciles (contract §7). */
export function consumerFilterSubjects(driver: string, resources: Iterable<string>): string[] {
  const subjects: string[] = [];
  for (const resource of [...new Set(resources)].sort()) {
    subjects.push(resourceSubject(resource), pipelineStepSubject(driver, resource));
  }
  return subjects;
}

/** `logs.{runId}`: persisted log lines (JetStream, stream `logs-engine`). */
export function logSubject(runId: string): string {
  return `logs.${assertSubjectToken('run id', runId)}`;
}

/** `live.logs.{runId}.{driver}`: live log lines (core NATS), forwarded verbatim by the server's SSE. */
export function liveLogSubject(runId: string, driver: string): string {
  return `live.logs.${assertSubjectToken('run id', runId)}.${assertSubjectToken('driver name', driver)}`;
}

/**
 * `driver:{driver}:logs:{runId}`: the seed's live log subject (core NATS, Conveyor <= 0.4, contract
 * §9.3). A single token: `:` is not a NATS separator.
 */
export function legacyLiveLogSubject(driver: string, runId: string): string {
  return `driver:${assertSubjectToken('driver name', driver)}:logs:${assertSubjectToken('run id', runId)}`;
}

/** How a message reached the driver, read back from its subject. */
export type MessageRoute =
  { kind: 'resource'; resource: string } | { kind: 'pipeline-step'; driver: string; resource: string };

/** Parses a `messages` subject; `null` for anything that is not a driver subject. */
export function parseMessageSubject(subject: string): MessageRoute | null {
  const parts = subject.split('.');
  if (parts.length === 2 && parts[0] === 'resources' && isSubjectToken(parts[1])) {
    return { kind: 'resource', resource: parts[1] };
  }
  if (parts.length === 4 && parts[0] === 'drivers' && parts[2] === 'resources') {
    return { kind: 'pipeline-step', driver: parts[1], resource: parts[3] };
  }
  return null;
}
