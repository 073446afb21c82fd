import { randomUUID } from 'node:crypto';
import type { ResourceDefinition } from '@conveyor-ci/nestjs/internal';
import { Ctx, error, json } from './fiber-http';
import { decodeBody, decodeDefinition, goDefinition } from './go-json.codec';

// Resource-definition handlers (internal/handlers/resource_definitions.go at @HEAD).

export function createDefinition({ req, res, body, deps }: Ctx): void {
  const definition = decodeBody<ResourceDefinition>({ req, res, body }, decodeDefinition);
  if (!definition) return;
  // Names are not validated (§10.2): an empty name is stored under the empty key, as in etcd.
  const stored = goDefinition({ ...definition, id: randomUUID() });
  // Server bug kept (§10.1): a duplicate is 500.
  if (deps.store.definitions.has(stored.name)) {
    return error(
      res,
      500,
      `Failed to insert resource definition: resource definition with name ${stored.name} already exists`,
    );
  }
  deps.store.definitions.set(stored.name, stored);
  json(res, 201, goDefinition(stored));
}

export function applyDefinition({ req, res, body, deps }: Ctx): void {
  const definition = decodeBody<ResourceDefinition>({ req, res, body }, decodeDefinition);
  if (!definition) return;
  if (definition.name === '') return error(res, 400, 'Resource name is required');
  // The document stored is the body as received (marshalled before any id is set).
  const stored = goDefinition(definition);
  if (deps.store.definitions.has(definition.name)) {
    // Server bug kept (§10.1): the body replaces the stored document, so the old id is lost.
    deps.store.definitions.set(definition.name, stored);
    return json(res, 201, goDefinition(definition));
  }
  deps.store.definitions.set(definition.name, stored);
  // Server bug kept (§10.1): on create the new id is in the response only, never persisted.
  json(res, 201, goDefinition({ ...definition, id: randomUUID() }));
}

export function getDefinition({ res, params: { name }, deps }: Ctx): void {
  const found = deps.store.definitions.get(name);
  // Server bug kept (§10.1): not-found is 500.
  if (!found) {
    return error(
      res,
      500,
      `Failed to find resource definition: resource definition with name ${name} not found`,
    );
  }
  json(res, 200, goDefinition(found));
}

export function updateDefinition({ req, res, body, params: { name }, deps }: Ctx): void {
  const definition = decodeBody<ResourceDefinition>({ req, res, body }, decodeDefinition);
  if (!definition) return;
  // Server bug kept (§10.1): not-found is 500.
  if (!deps.store.definitions.has(name)) {
    return error(
      res,
      500,
      `Failed to update resource definition: resource definition with name ${name} not found`,
    );
  }
  // Stored under the URL's name whatever the body's `name` (and `id`) say, as `Update(name, body)` does.
  deps.store.definitions.set(name, goDefinition(definition));
  json(res, 200, goDefinition(definition));
}

export function deleteDefinition({ res, params: { name }, deps }: Ctx): void {
  // Server bug kept (§10.1): not-found is 500 (unlike resources, the model checks existence first).
  if (!deps.store.definitions.has(name)) {
    return error(
      res,
      500,
      `Failed to delete resource definition: resource definition with name ${name} not found`,
    );
  }
  deps.store.definitions.delete(name);
  res.writeHead(204).end();
}
