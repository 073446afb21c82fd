/**
 * Conveyor 0.6.x wire types, with JSON keys exactly as the Go struct tags (wire contract §3).
 * Keep every shape that crosses NATS or HTTP in this folder so the contract can be audited in one place.
 */

/**
 * A Conveyor resource (contract §3.1). `metadata` values are strings at 0.6.x but become any JSON
 * upstream (contract §15), so readers must not assume strings.
 */
export interface Resource<Spec = unknown> {
  id?: string;
  name: string;
  pipeline?: string;
  /** The resource-definition (type) name, e.g. `pipeline`. */
  resource: string;
  metadata?: ResourceMetadata | null;
  spec: Spec;
}

/**
 * A resource's `metadata` as the server sends it: `version` is a decimal *string* (`"1"` on create,
 * raised by one on every `PUT`; read it as a number with {@link resourceVersion}). The engine adds
 * `driverresults.<driver>` entries (read them with `previousResult`); other values are strings at
 * 0.6.x and any JSON upstream.
 */
export interface ResourceMetadata {
  /** The resource's version as the server stores it: `"1"`, `"2"`, … */
  version?: string;
  [key: string]: unknown;
}

/**
 * What the server publishes to a driver (contract §3.4). The server always sends `payload` as a
 * JSON-encoded *string* of a Resource; the SDD models it as an object, so both are accepted.
 */
export interface DriverMessage {
  event: string;
  payload: string | Resource;
  /** 24 lowercase hex chars, new per dispatched message. */
  id: string;
  /** UUID v4, shared by every step of a pipeline run. */
  run_id: string;
}

/** What a `@Reconcile` handler returns (contract §3.5). */
export interface DriverResult<Data = unknown> {
  success: boolean;
  message?: string;
  data?: Data;
}

/** `driverresult` inside a PipelineEvent (contract §3.6): all four keys are always present. */
export interface DriverResultEvent {
  success: boolean;
  message: string;
  data: unknown;
  driver: string;
}

/** What a driver publishes to `pipelines.driver.result` (contract §3.6). `resource` is an object. */
export interface PipelineEvent {
  event: string;
  run_id: string;
  resource: Resource;
  driverresult: DriverResultEvent;
}

/** One log line as the server stores it (contract §3.7). Note `runid` has no underscore. */
export interface ConveyorLog {
  runid: string;
  driver: string;
  pipeline: string;
  timestamp: string;
  message: string;
}

/** A resource definition (contract §3.2): `spec` of its resources is validated against `schema`. */
export interface ResourceDefinition {
  id?: string;
  name: string;
  description?: string;
  version?: string;
  schema: unknown;
}

/** One step of a pipeline (contract §3.3). */
export interface PipelineStep {
  id?: string;
  name: string;
  driver: string;
}

/** A pipeline (contract §3.3): steps run in order, one driver each, on resources of type `resource`. */
export interface Pipeline {
  name: string;
  description?: string;
  version?: string;
  resource: string;
  steps: PipelineStep[];
  metadata?: Record<string, string>;
}
