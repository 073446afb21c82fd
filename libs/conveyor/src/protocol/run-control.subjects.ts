import { assertSubjectToken } from './subjects';

/**
 * Run control (cancel, progress) is this runtime's addition to Conveyor 0.6.x, so it lives outside
 * every subject space the server's streams capture (`resources.>`, `events.>`, `drivers.>`,
 * `pipelines.>`, `logs.>`, `live.logs.>`): nothing here is stored by the server, and a Go driver
 * sharing the deployment never sees it.
 */
export const RUN_CONTROL_PREFIX = 'conveyor-run';

/** JetStream KV bucket remembering cancels for runs not started yet (an entry expires after its TTL). */
export const RUN_CANCELS_BUCKET = 'conveyor-run-cancels';

/** Every replica of every driver subscribes here; the run id is the last token. */
export const CANCEL_SUBJECTS = `${RUN_CONTROL_PREFIX}.cancel.*`;

/** `conveyor-run.cancel.{runId}`: core NATS, published by `RunControl.cancel`. */
export function cancelSubject(runId: string): string {
  return `${RUN_CONTROL_PREFIX}.cancel.${assertSubjectToken('run id', runId)}`;
}

/** `conveyor-run.progress.{runId}.{driver}`: core NATS, published by `ctx.progress()`. */
export function progressSubject(runId: string, driver: string): string {
  return `${RUN_CONTROL_PREFIX}.progress.${assertSubjectToken('run id', runId)}.${assertSubjectToken('driver name', driver)}`;
}

/** `conveyor-run.progress.{runId}.*`: every driver's progress reports of one run. */
export function runProgressSubjects(runId: string): string {
  return `${RUN_CONTROL_PREFIX}.progress.${assertSubjectToken('run id', runId)}.*`;
}

/** A cancel request on core `conveyor-run.cancel.{runId}` and in the KV bucket `conveyor-run-cancels` (key: the run id). */
export interface RunCancelRequest {
  run_id: string;
  reason: string;
  /** RFC 3339, when it was requested. */
  requested_at: string;
}

/** A progress report on core `conveyor-run.progress.{runId}.{driver}`. */
export interface RunProgress {
  run_id: string;
  driver: string;
  /** 0 to 1. */
  fraction: number;
  done?: number;
  total?: number;
  phase?: string;
  /** Increases by one per report of the run on this delivery: a consumer can drop stale ones. */
  seq: number;
  /** RFC 3339. */
  at: string;
}

/**
 * JetStream KV bucket of per-resource leases (`@Reconcile({ perResource })`): key
 * `{driver}.{resource type}.{resource name}`, each part base64url-encoded (resource names may hold
 * characters a KV key cannot), value a {@link ResourceLeaseHolder}. Entries expire after the bucket's
 * TTL unless renewed, so a crashed replica's lease frees itself.
 */
export const RUN_LEASES_BUCKET = 'conveyor-run-leases';

/** Who holds a resource's lease. */
export interface ResourceLeaseHolder {
  run_id: string;
  message_id: string;
  /** Stream sequence of the held message in `messages`: the newer event is the higher one. */
  stream_seq: number;
  /** RFC 3339, last renewal. */
  renewed_at: string;
}

/** The KV key of the lease of resource `type`/`name` for driver `driver`. */
export function resourceLeaseKey(driver: string, type: string, name: string): string {
  return [driver, type, name].map((part) => Buffer.from(part, 'utf8').toString('base64url')).join('.');
}
