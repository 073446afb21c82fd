import { createHash } from 'node:crypto';

/**
 * `value` with every object's keys sorted, at any depth. The server stores a definition's schema
 * as a Go `any` and marshals it back with sorted keys, so a schema read from the API and the same
 * schema read from its JSON file differ only in key order: sorted, they are the same.
 */
export function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (typeof value !== 'object' || value === null) return value;
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort())
    sorted[key] = sortKeys((value as Record<string, unknown>)[key]);
  return sorted;
}

/**
 * SHA-256 (hex, first 16 digits) of the schema with its keys sorted: what a generated validator
 * records, so the startup check and `generate --check` see a schema that changed under the same
 * `version`.
 */
export function schemaHash(schema: unknown): string {
  return createHash('sha256')
    .update(JSON.stringify(sortKeys(schema ?? null)))
    .digest('hex')
    .slice(0, 16);
}
