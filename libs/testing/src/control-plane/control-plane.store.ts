import { randomUUID } from 'node:crypto';
import {
  ConveyorLog,
  DriverMessage,
  DriverResultEvent,
  Pipeline,
  Resource,
  ResourceDefinition,
  encodeGoJson,
} from '@conveyor-ci/nestjs/internal';
import { decodeDriverResult, decodeLog } from './go-json.codec';

/**
 * What the Conveyor server keeps in etcd and BadgerDB, in memory: resources (latest and every
 * version), resource definitions, pipelines and logs. Shapes and keys as the server's (contract §3, §10.2).
 */
export class ControlPlaneStore {
  readonly definitions = new Map<string, ResourceDefinition>();
  readonly pipelines = new Map<string, Pipeline>();
  /** `{type}/{name}` → the latest version. */
  readonly resources = new Map<string, Resource<unknown>>();
  /** `{type}/{name}/{version}` → that version (kept after a DELETE, like the server's versioned keys). */
  readonly versions = new Map<string, Resource<unknown>>();
  /** `POST /drivers/broadcast-message` messages by id, like the server's etcd `driver-messages/{id}`. */
  readonly driverMessages = new Map<string, DriverMessage>();
  /** Logs by BadgerDB key `pipeline|driver|runid|timestamp|uuid`: replay is in key order. */
  private readonly logs = new Map<string, { key: Buffer; log: ConveyorLog }>();

  getResource(type: string, name: string): Resource<unknown> | undefined {
    return this.resources.get(`${type}/${name}`);
  }

  /** Stores `resource` as the latest and as its `metadata.version`. */
  putResource(resource: Resource<unknown>): void {
    resource = { ...resource, metadata: sortedKeys(resource.metadata) };
    const version = String((resource.metadata as Record<string, unknown> | null | undefined)?.version ?? '1');
    this.resources.set(`${resource.resource}/${resource.name}`, resource);
    this.versions.set(`${resource.resource}/${resource.name}/${version}`, resource);
  }

  /**
   * Stores `resource` under `{type}/{name}` and `{type}/{name}/{metadata.version}` whatever its own
   * `resource` and `name` say: `PUT /resources/:type/:name` keys by the URL, not the body (contract §10.1).
   */
  putResourceAt(type: string, name: string, resource: Resource<unknown>): void {
    const version = String((resource.metadata as Record<string, unknown> | null | undefined)?.version ?? '1');
    this.resources.set(`${type}/${name}`, resource);
    this.versions.set(`${type}/${name}/${version}`, resource);
  }

  deleteResource(type: string, name: string): void {
    this.resources.delete(`${type}/${name}`);
  }

  /**
   * What the engine does with a driver's result (contract §6.2): `metadata["driverresults.<driver>"]`
   * becomes the result as a JSON **string** (Go-encoded). Returns the updated resource, or undefined
   * when there is no such resource or Go could not have decoded the result.
   */
  recordDriverResult(type: string, name: string, result: DriverResultEvent): Resource<unknown> | undefined {
    const current = this.getResource(type, name);
    if (!current) return undefined;
    // The engine decoded the event into its struct and `SaveDriverResult` marshals that: struct
    // field order, `data` keys sorted, whatever order the driver sent them in.
    let stored: unknown;
    try {
      stored = decodeDriverResult(result, undefined);
    } catch {
      return undefined; // e.g. `"success":"yes"`: Go's Unmarshal of the event fails and the engine skips it
    }
    const updated = {
      ...current,
      metadata: sortedKeys({
        ...(current.metadata ?? {}),
        [`driverresults.${result.driver}`]: encodeGoJson(stored),
      }),
    };
    this.resources.set(`${type}/${name}`, updated);
    return updated;
  }

  /**
   * Stores a line as the server does: decoded into `types.Log` (unknown fields dropped, its five
   * fields in struct order) under `pipeline|driver|runid|timestamp|uuid`.
   * @throws GoDecodeError for a line Go could not decode into that struct (a field of another type).
   */
  addLog(line: unknown): void {
    const log = decodeLog(line, undefined) as ConveyorLog;
    const key = `${log.pipeline}|${log.driver}|${log.runid}|${log.timestamp}|${randomUUID()}`;
    this.logs.set(key, { key: Buffer.from(key, 'utf8'), log });
  }

  /**
   * Logs matching every given filter, in BadgerDB's key order: the keys' UTF-8 bytes compared. So
   * lines group by pipeline, then driver, not by time; the Go runtime's lines (`pipeline` "", key
   * `|driver|…`) come after ours whenever the pipeline's name starts below `|` (letters, digits).
   */
  queryLogs(filter: { pipeline?: string; driver?: string; runid?: string } = {}): ConveyorLog[] {
    return [...this.logs.values()]
      .sort((a, b) => Buffer.compare(a.key, b.key))
      .map(({ log }) => log)
      .filter(
        (log) =>
          (!filter.pipeline || log.pipeline === filter.pipeline) &&
          (!filter.driver || log.driver === filter.driver) &&
          (!filter.runid || log.runid === filter.runid),
      );
  }
}

/** Go's encoding/json writes map keys sorted: `metadata` is a Go map, so it reads back sorted. */
function sortedKeys<T extends Record<string, unknown> | null | undefined>(map: T): T {
  if (!map) return map;
  return Object.fromEntries(Object.entries(map).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) as T;
}
