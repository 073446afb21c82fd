import { isSubjectToken } from '../protocol';

/**
 * JetStream KV bucket of live driver replicas (issue 29). Like run control, this runtime's addition
 * to Conveyor 0.6.x: a Go driver writes nothing here, and the server never reads it. Each replica
 * keeps one entry under its key (`{driver}.{instance_id}`) and rewrites it every third of the
 * bucket's TTL, so a replica that dies without a goodbye (SIGKILL, OOM, a lost host) ages out
 * within one TTL.
 */
export const DRIVER_REGISTRY_BUCKET = 'conveyor-drivers';

/**
 * TTL of a bucket this runtime creates: three heartbeats of 5 s. Whoever creates the bucket first
 * decides its TTL (`views.kv` never changes an existing one), and writers heartbeat by the TTL they find.
 */
export const DEFAULT_REGISTRY_TTL_MS = 15_000;

/** What one replica says about itself, as stored (JSON, snake_case like the wire contract's other types). */
export interface DriverRegistryEntry {
  /** The driver name (the consumer's name). */
  driver: string;
  /** Random per process start: two replicas on one host never share an entry. */
  instance_id: string;
  host: string;
  pid: number;
  /** The app's own `package.json` version, when one is found. */
  app_version?: string;
  /** `@conveyor-ci/nestjs` version, when one is found. */
  library_version?: string;
  /** Resource types it reconciles, each with the events its handler accepts (`null`: every event). */
  resources: { resource: string; events: string[] | null }[];
  /** Runs at once in this replica (the module's `concurrency`). */
  concurrency: number;
  /** Runs in flight at the last write. */
  in_flight: number;
  /** Transport state at the last write: `consuming`, `recovering`, `draining`… */
  state: string;
  /** RFC 3339: when the process's transport started consuming. */
  started_at: string;
  /** RFC 3339: the last write (a heartbeat or a change). */
  heartbeat_at: string;
}

/** A registry entry with what the reader knows of its freshness. */
export interface LiveDriverInstance extends DriverRegistryEntry {
  /** RFC 3339: when the server stored the entry's last write (its clock, not the writer's). */
  seen_at: string;
  /** RFC 3339: when the entry expires unless rewritten. */
  expires_at: string;
}

/** `{driver}.{instance_id}`: the driver first, so `{driver}.>` watches one driver's replicas. */
export function registryKey(driver: string, instanceId: string): string {
  return `${driver}.${instanceId}`;
}

/**
 * The entry `bytes` hold, or undefined when they are not one (another tool or version wrote it):
 * a foreign value is skipped, never shown half-read.
 */
export function parseRegistryEntry(bytes: Uint8Array): DriverRegistryEntry | undefined {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return undefined;
  }
  const e = value as Partial<DriverRegistryEntry> | null;
  if (
    typeof e !== 'object' ||
    e === null ||
    !isSubjectToken(e.driver) ||
    !isSubjectToken(e.instance_id) ||
    typeof e.host !== 'string' ||
    typeof e.pid !== 'number' ||
    !Array.isArray(e.resources) ||
    typeof e.concurrency !== 'number' ||
    typeof e.in_flight !== 'number' ||
    typeof e.state !== 'string' ||
    typeof e.started_at !== 'string' ||
    typeof e.heartbeat_at !== 'string'
  )
    return undefined;
  return e as DriverRegistryEntry;
}
