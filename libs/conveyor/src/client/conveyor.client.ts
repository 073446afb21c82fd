import type { HttpService } from '@nestjs/axios';
import { Inject, Injectable, Optional } from '@nestjs/common';
import { ConveyorClientConfig, ConveyorClientOptions, resolveClientConfig } from '../module/client.options';
import { ConveyorConfigError } from '../module/conveyor.options';
import {
  ConveyorLog,
  DriverMessage,
  Pipeline,
  Resource,
  ResourceDefinition,
  assertSubjectToken,
} from '../protocol';
import { definitionPath, pathSegment, resourcePath } from './api-paths';
import { ApiCall, ApiCallOptions, ApiRequester, Confirmation } from './api-request';
import { CONVEYOR_CLIENT_CONFIG } from './client.constants';
import { ConveyorApiError } from './conveyor-api.error';
import { confirmUpdate, versionOf, withServerMetadata } from './driver-results';
import { LogStream, LiveLogOptions } from './log-stream';

/** `201` of `POST /resources/` (contract §10.1). */
export interface CreatedResource {
  name: string;
  /** The run this create started (every step of a pipeline shares it). */
  runid: string;
  message: string;
  version: string;
}

/** `GET /health` (registered by the server's CLI only, contract §10.1). */
export interface ApiHealth {
  status: string;
  /** Unix seconds. */
  time: number;
}

/** Filters of `GET /logs`; each is optional. Go drivers leave `pipeline` empty, so filtering by it misses their lines. */
export interface LogQuery {
  pipeline?: string;
  driver?: string;
  runid?: string;
}

/** A message for `POST /drivers/broadcast-message`; the server assigns the `id`. */
export type BroadcastMessage = Omit<DriverMessage, 'id'> & { id?: string };

/**
 * The Conveyor HTTP API (contract §10.1), every routed endpoint. Injectable wherever `ConveyorModule`
 * or `ConveyorClientModule` is imported, or standalone: `new ConveyorClient({ apiUrl })`.
 *
 * Every call accepts {@link ApiCallOptions} (`signal`, `timeoutMs`, `retries`); inside a run the
 * run's `ctx.signal` aborts it too. Failures throw {@link ConveyorApiError}; reads of one item return
 * `null` for the server's "not found" (a 500 at 0.6.x). A call that must not be sent twice and got
 * no answer throws `ConveyorApiOutcomeUnknownError` (never transient); an `authorization` provider
 * that fails throws `ConveyorAuthorizationError` (nothing sent, not retried).
 */
@Injectable()
export class ConveyorClient {
  /** The resolved settings: URL, host, port, timeout, retries. */
  readonly config: ConveyorClientConfig;
  private readonly requester: ApiRequester;

  /**
   * @param options the client's settings (standalone: resolved with env fallbacks here).
   * @param http the `@nestjs/axios` HttpService to send with, e.g. one with its own agent; default
   *   one of its own, made by the first request (axios is not loaded before a driver calls the API).
   */
  constructor(
    @Inject(CONVEYOR_CLIENT_CONFIG) options: ConveyorClientOptions | ConveyorClientConfig = {},
    // A type-only import: Nest sees `Object` here, which nothing provides, so it passes undefined.
    @Optional() http?: HttpService,
  ) {
    this.config = isResolved(options) ? options : resolveStandalone(options);
    this.requester = new ApiRequester(http, this.config);
  }

  /** Base URL of the API, e.g. `http://localhost:8080` (Go `GetAPIURL`). */
  get apiUrl(): string {
    return this.config.apiUrl;
  }

  /** Host of the API URL. */
  get host(): string {
    return this.config.host;
  }

  /** Port of the API URL. */
  get port(): number {
    return this.config.port;
  }

  /** Same as {@link apiUrl}, named as the Go client's `GetAPIURL`. */
  getApiUrl(): string {
    return this.config.apiUrl;
  }

  /** `GET /health`. Only the server's CLI registers it: an embedded server answers 404. */
  async health(options?: ApiCallOptions): Promise<ApiHealth> {
    return this.data<ApiHealth>({ method: 'GET', path: '/health', idempotent: true }, options);
  }

  /** `GET /`: the server's banner text. */
  async serverInfo(options?: ApiCallOptions): Promise<string> {
    return this.data<string>({ method: 'GET', path: '/', idempotent: true }, options);
  }

  /** `GET /metrics`: the server's Prometheus text. */
  async metrics(options?: ApiCallOptions): Promise<string> {
    return this.data<string>({ method: 'GET', path: '/metrics', idempotent: true }, options);
  }

  /**
   * `POST /resources/`: stores the resource and starts a run (its pipeline's, or one event on
   * `resources.{type}`). The server overwrites `id` and `metadata`, so they are not sent. Never
   * retried: a second POST would be a duplicate (500 "already exists"). Without an answer (a
   * timeout, a dropped connection) it throws `ConveyorApiOutcomeUnknownError`, never a transient
   * error: the resource may exist; `getResource` tells.
   */
  async createResource<Spec>(resource: Resource<Spec>, options?: ApiCallOptions): Promise<CreatedResource> {
    assertSubjectToken('resource type', resource.resource);
    pathSegment('resource name', resource.name);
    const { name, pipeline, spec } = resource;
    const body = { name, ...(pipeline ? { pipeline } : {}), resource: resource.resource, spec };
    return this.data({ method: 'POST', path: '/resources/', body, idempotent: false }, options);
  }

  /** `GET /resources/{type}/{name}`. @returns the resource, or `null` when it does not exist. */
  async getResource<Spec = unknown>(
    type: string,
    name: string,
    options?: ApiCallOptions,
  ): Promise<Resource<Spec> | null> {
    return this.find({ method: 'GET', path: resourcePath(typeToken(type), name), idempotent: true }, options);
  }

  /** `GET /resources/{type}/{name}/{version}`: an earlier version. @returns `null` when there is none. */
  async getResourceVersion<Spec = unknown>(
    type: string,
    name: string,
    version: string | number,
    options?: ApiCallOptions,
  ): Promise<Resource<Spec> | null> {
    const path = resourcePath(typeToken(type), name, version);
    return this.find({ method: 'GET', path, idempotent: true }, options);
  }

  /**
   * `PUT /resources/{resource.resource}/{resource.name}`: replaces spec and metadata, keeps the `id`,
   * increments `metadata.version`, publishes no event. The stored metadata becomes the body's, so the
   * engine's `driverresults.*` are lost unless sent back: see {@link updateResourceKeepingResults}.
   *
   * Not sent twice blindly: every PUT raises the version and replaces the metadata, wiping results
   * the engine wrote meanwhile. After an attempt that got no answer the client reads the resource
   * back first: when it holds this update at a version above `resource.metadata.version` (or, without
   * one, holds this update) that attempt succeeded and its stored state is returned; when the version
   * did not move it is sent again; when another writer changed it, it throws
   * `ConveyorApiOutcomeUnknownError`.
   */
  async updateResource<Spec>(resource: Resource<Spec>, options?: ApiCallOptions): Promise<Resource<Spec>> {
    return this.putResource(resource, versionOf(resource.metadata), options);
  }

  /**
   * An update that keeps what the server manages (contract §17 G17): reads the stored resource and
   * sends `resource` with the stored `driverresults.*` metadata added back (keys `resource` sets
   * win; `version` is the server's). Not atomic: a result the engine writes between the read and
   * the write is lost, as with any read-modify-write over this API.
   * @throws ConveyorApiError (404-like, `isNotFound()`) when the resource does not exist.
   */
  async updateResourceKeepingResults<Spec>(
    resource: Resource<Spec>,
    options?: ApiCallOptions,
  ): Promise<Resource<Spec>> {
    const current = await this.getResource(resource.resource, resource.name, options);
    if (!current) {
      const path = resourcePath(resource.resource, resource.name);
      throw new ConveyorApiError(
        404,
        `resource ${resource.name} of type ${resource.resource} not found`,
        'GET',
        path,
      );
    }
    const metadata = withServerMetadata(current, resource);
    // The version read is the one this PUT raises: a read-back after a lost answer compares with it.
    return this.putResource({ ...resource, metadata }, versionOf(current.metadata), options);
  }

  /** The PUT of {@link updateResource}; `baseVersion`: the stored version it replaces, when known. */
  private async putResource<Spec>(
    resource: Resource<Spec>,
    baseVersion: number | undefined,
    options?: ApiCallOptions,
  ): Promise<Resource<Spec>> {
    const path = resourcePath(typeToken(resource.resource), resource.name);
    const confirm = async (signal: AbortSignal | undefined): Promise<Confirmation> => {
      const read: ApiCall = { method: 'GET', path, idempotent: true };
      const stored = await this.find<Resource<Spec>>(read, {
        timeoutMs: options?.timeoutMs,
        signal,
        retries: 0,
      });
      // Gone: sent again, the server answers its "not found" for the caller to see.
      if (!stored) return 'not-applied';
      return confirmUpdate(resource, stored, baseVersion);
    };
    return this.data({ method: 'PUT', path, body: resource, idempotent: false, confirm }, options);
  }

  /**
   * `DELETE /resources/{type}/{name}`: 204, also when nothing was there (the server does not check).
   * Retried; a retry answered "not found" after an attempt that got no answer is a success.
   */
  async deleteResource(type: string, name: string, options?: ApiCallOptions): Promise<void> {
    await this.data(
      { method: 'DELETE', path: resourcePath(typeToken(type), name), idempotent: true },
      options,
    );
  }

  /** `POST /resource-definitions/`: 500 "already exists" for a known name. Never retried. */
  async createResourceDefinition(
    definition: ResourceDefinition,
    options?: ApiCallOptions,
  ): Promise<ResourceDefinition> {
    typeToken(definition.name);
    return this.post('/resource-definitions/', definition, { idempotent: false }, options);
  }

  /** `POST /resource-definitions/apply`: create or replace (an upsert, so retried like a PUT). */
  async createOrUpdateResourceDefinition(
    definition: ResourceDefinition,
    options?: ApiCallOptions,
  ): Promise<ResourceDefinition> {
    typeToken(definition.name);
    return this.post('/resource-definitions/apply', definition, { idempotent: true }, options);
  }

  /** `GET /resource-definitions/{name}`. @returns `null` when it does not exist. */
  async getResourceDefinition(name: string, options?: ApiCallOptions): Promise<ResourceDefinition | null> {
    return this.find({ method: 'GET', path: definitionPath(name), idempotent: true }, options);
  }

  /** `PUT /resource-definitions/{definition.name}`: 500 "not found" (thrown) for an unknown name. */
  async updateResourceDefinition(
    definition: ResourceDefinition,
    options?: ApiCallOptions,
  ): Promise<ResourceDefinition> {
    const path = definitionPath(definition.name);
    return this.data({ method: 'PUT', path, body: definition, idempotent: true }, options);
  }

  /**
   * `DELETE /resource-definitions/{name}`: 500 "not found" (thrown) for an unknown name, unless it
   * answers a retry after an attempt that got no answer: that attempt deleted it, a success.
   */
  async deleteResourceDefinition(name: string, options?: ApiCallOptions): Promise<void> {
    await this.data({ method: 'DELETE', path: definitionPath(name), idempotent: true }, options);
  }

  /** `POST /pipelines/`: an upsert (so retried like a PUT); 500 when its `resource` type is unknown. */
  async createPipeline(pipeline: Pipeline, options?: ApiCallOptions): Promise<Pipeline> {
    for (const step of pipeline.steps ?? []) assertSubjectToken('pipeline step driver', step.driver);
    return this.data({ method: 'POST', path: '/pipelines/', body: pipeline, idempotent: true }, options);
  }

  /** `GET /logs?pipeline=&driver=&runid=`: stored lines, always an array. */
  async getLogs(query: LogQuery = {}, options?: ApiCallOptions): Promise<ConveyorLog[]> {
    const params = new URLSearchParams();
    for (const key of ['pipeline', 'driver', 'runid'] as const) if (query[key]) params.set(key, query[key]);
    const path = `/logs${params.size > 0 ? `?${params}` : ''}`;
    return (await this.data<ConveyorLog[] | null>({ method: 'GET', path, idempotent: true }, options)) ?? [];
  }

  /**
   * `POST /logs`: stores one line directly (drivers normally publish to `logs.{runId}`). Never
   * retried; without an answer, `ConveyorApiOutcomeUnknownError`.
   */
  async createLog(log: ConveyorLog, options?: ApiCallOptions): Promise<void> {
    await this.data({ method: 'POST', path: '/logs', body: log, idempotent: false }, options);
  }

  /** `POST /drivers/broadcast-message`: stored and published on core subject `application`. Never retried. */
  async broadcastMessage(message: BroadcastMessage, options?: ApiCallOptions): Promise<{ message: string }> {
    return this.post('/drivers/broadcast-message', message, { idempotent: false }, options);
  }

  /**
   * SSE `GET /logs/streams/{driver}/{runId}`: one driver's lines of a run, replay then live, as an
   * async iterable (`for await`) or, with `.asObservable()`, an Observable. Never ends by itself.
   */
  streamDriverLogs(driver: string, runId: string, options?: LiveLogOptions): LogStream {
    const path = `/logs/streams/${pathSegment('driver', driver)}/${pathSegment('run id', runId)}`;
    return new LogStream(this.requester, path, options);
  }

  /** SSE `GET /logs/pipeline/{runId}`: every driver's lines of a run; see {@link streamDriverLogs}. */
  streamPipelineLogs(runId: string, options?: LiveLogOptions): LogStream {
    return new LogStream(this.requester, `/logs/pipeline/${pathSegment('run id', runId)}`, options);
  }

  private async post<T>(
    path: string,
    body: unknown,
    { idempotent }: { idempotent: boolean },
    options?: ApiCallOptions,
  ): Promise<T> {
    return this.data<T>({ method: 'POST', path, body, idempotent }, options);
  }

  private async data<T>(call: ApiCall, options?: ApiCallOptions): Promise<T> {
    return (await this.requester.send<T>(call, options)).data;
  }

  /** A read of one item: the server's not-found (500 + "not found" at 0.6.x) is `null`. */
  private async find<T>(call: ApiCall, options?: ApiCallOptions): Promise<T | null> {
    try {
      return await this.data<T>(call, options);
    } catch (err) {
      if (err instanceof ConveyorApiError && err.isNotFound()) return null;
      throw err;
    }
  }
}

/** A resource type ends up in NATS subjects (`resources.{type}`): validated as a subject token first. */
function typeToken(type: string): string {
  return assertSubjectToken('resource type', type);
}

function isResolved(options: ConveyorClientOptions | ConveyorClientConfig): options is ConveyorClientConfig {
  const config = options as Partial<ConveyorClientConfig>;
  return typeof config.retryDelayMs === 'function' && typeof config.port === 'number';
}

/** Standalone options with env fallbacks. @throws ConveyorConfigError listing every problem. */
function resolveStandalone(options: ConveyorClientOptions): ConveyorClientConfig {
  const problems: string[] = [];
  const config = resolveClientConfig(options, process.env, problems);
  if (problems.length > 0) throw new ConveyorConfigError(problems);
  return config;
}
