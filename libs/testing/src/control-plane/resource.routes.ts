import { randomUUID } from 'node:crypto';
import { Ctx, error, errorText, json } from './fiber-http';
import { GoResource, decodeBody, decodeResource, goAtoi, goResource } from './go-json.codec';
import { rejectSpec } from './spec.validation';

// Resource handlers (internal/handlers/resource.go at @HEAD).

export async function createResource({ req, res, body, deps }: Ctx): Promise<void> {
  const parsed = decodeBody<GoResource>({ req, res, body }, decodeResource);
  if (!parsed) return;
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
export function listResources({ res }: Ctx): void {
  error(res, 400, 'Resource type is required');
}

export function getResource({ res, params: { type, name }, deps }: Ctx): void {
  const found = deps.store.getResource(type, name);
  // Server bug kept (§10.1): not-found is 500 (the server's own test asserts it).
  if (!found) {
    return error(res, 500, `Failed to find resource: resource with name ${name} and type ${type} not found`);
  }
  json(res, 200, goResource(found));
}

export function getResourceVersion({ res, params: { type, name, version }, deps }: Ctx): void {
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

export function updateResource({ req, res, body, params: { type, name }, deps }: Ctx): void {
  const resource = decodeBody<GoResource>({ req, res, body }, decodeResource);
  if (!resource) return;
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
export function deleteResource({ res, params: { type, name }, deps }: Ctx): void {
  deps.store.deleteResource(type, name);
  res.writeHead(204).end();
}
